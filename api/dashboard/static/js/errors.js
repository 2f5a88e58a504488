// Engine and 1C errors in Russian. The engine's messages are English (they go to logs and
// Dagster too); the page explains the known classes in Russian and keeps the original
// message at hand (a "Подробнее" disclosure), so an operator can still quote it.

import { el } from "./dom.js";
import { formatDateTime } from "./format.js";

// The breaker's refusal: "<first cause> — 1C <url> ('<id>'): circuit open after N failures in a
// row; calls are refused until <ISO>" (sources/common/breaker.py, circuit_open_message).
const CIRCUIT =
  /(?:^|: )(?:1C: )?(.*?) — 1C (\S+) \('[^']*'\): circuit [^;]*?(?: after (\d+) failures in a row)?; calls are refused until (\S+)/s;
const CIRCUIT_BARE = /circuit (?:open|opened|half-open)/;

// Most specific first; the first match explains the message.
const KNOWN = [
  [/rows rejected .*above the limit|TRADEOS_REJECT_RATIO/s, () => "Слишком много строк 1С не прошло проверку — ничего не записано. Исправьте данные в 1С (список отклонённых строк — в подробностях операции)."],
  [/refused the credentials|HTTP 40[13]\b|\((?:401|403)\)/, () => "1С отклонила учётные данные: проверьте ключ API или логин и пароль интеграции."],
  [/not found \(404\)|HTTP 404\b/, () => "Адрес 1С неверен или HTTP-сервис не опубликован (404): проверьте base_url."],
  [/timeout|timed out/i, () => "1С не ответила вовремя (истёк тайм-аут)."],
  [/connection failed|ConnectError|connection refused|All connection attempts failed|Name or service not known/i, () => "1С недоступна: сервер не отвечает или отклоняет соединение."],
  [/HTTP 429\b/, () => "1С перегружена и просит повторить позже (HTTP 429)."],
  [/HTTP (5\d\d)\b|answered (5\d\d)\b/, (m) => `1С вернула ошибку сервера (HTTP ${m[1] || m[2]}).`],
  [/refused (?:GET|POST|PUT|PATCH|DELETE) .*\((?:400|409|422)\): (.*)$/s, (m) => `1С отклонила запрос: ${m[1]}`],
  [/not valid JSON|an empty body|not the JSON|protocol|unexpected (?:answer|field|type)/i, () => "1С ответила не в том формате, который ожидается (ошибка протокола)."],
  [/unavailable/, () => "1С недоступна после всех повторных попыток."],
];

const CYRILLIC = /[А-Яа-яЁё]/;

/**
 * A Russian explanation of an error message, or null when the message is not a known class
 * (a message already in Russian, e.g. 1C's own words, is shown as it is).
 * @param {string} message
 * @returns {string | null}
 */
export function explainError(message) {
  if (!message) return null;
  const circuit = CIRCUIT.exec(message);
  if (circuit) {
    const [, cause, url, failures, until] = circuit;
    const first = explainError(cause) || cause;
    const streak = failures ? ` после ${failures} ошибок подряд` : "";
    return `Обращения к 1С (${url}) приостановлены${streak} до ${formatDateTime(until)}. Первая причина: ${first}`;
  }
  if (CIRCUIT_BARE.test(message)) return "Обращения к 1С временно приостановлены после серии ошибок.";
  for (const [pattern, explain] of KNOWN) {
    const match = pattern.exec(message);
    if (match) return explain(match);
  }
  return null;
}

/** The Russian explanation, else the message itself when it is Russian already. */
export function errorText(message) {
  const explained = explainError(message);
  if (explained) return explained;
  return message && CYRILLIC.test(message) ? message : message || "";
}

/**
 * Nodes showing an error: the Russian explanation, then the original message behind
 * «Подробнее» (only when it says something the explanation does not).
 * @param {string} lead text before the explanation (e.g. the entity name)
 * @param {string} message the original message
 */
export function errorNodes(lead, message) {
  const explained = explainError(message);
  const nodes = [el("span", { class: "explain", text: `${lead}${explained || message}` })];
  if (explained) {
    nodes.push(
      el(
        "details",
        { class: "original" },
        el("summary", { text: "Подробнее" }),
        el("code", { lang: "en", text: message }),
      ),
    );
  }
  return nodes;
}
