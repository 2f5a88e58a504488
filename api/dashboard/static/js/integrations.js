// Integration cards: live status, progress, last successful sync per entity, actions.
//
// The REST snapshot (integration + its /health) is the base; WebSocket events move the
// status between snapshots (queued → syncing with progress → finished/failed) with no reload.
// The snapshot carries what waits (sync requests, and the Dagster runs queued or running per
// entity), so a reloaded page shows the same queue as one that watched it fill.

import { api, ApiError } from "./api.js";
import { el, setMessage } from "./dom.js";
import { errorNodes, errorText } from "./errors.js";
import {
  ENTITY_NAMES,
  entityName,
  formatAge,
  formatDateTime,
  formatDuration,
  formatInt,
  formatPercent,
  logDurationSeconds,
  parseTime,
} from "./format.js";
import { PROTOCOL_NAMES } from "./integration-form.js";

// "idle" is not "waiting": nothing runs or waits for this integration.
export const STATUS_NAMES = {
  never: "Не запускалась",
  idle: "Нет активных запусков",
  queued: "В очереди",
  syncing: "Синхронизация",
  failed: "Ошибка",
  circuit_open: "1С недоступна",
  disabled: "Отключена",
};

/** The badge text: the status, with the number of runs waiting when there is a queue. */
export function statusLabel(state, status = statusOf(state)) {
  return status === "queued" ? `В очереди: ${formatInt(state.queued.size)}` : STATUS_NAMES[status];
}

const SYNC_ENTITIES = ["nomenclature", "stock", "orders"];
// Consecutive failures from which an integration is flagged as an alert.
const REPEATED_FAILURES = 2;

/** The parts of an integration's state the page shows. */
function emptyState(integration) {
  return {
    integration,
    circuit: { state: "closed", retryAt: null, asOf: null },
    errorStreak: 0,
    // entity → {lastSuccessAt, lastStatus, lastError, asOf}; asOf: when that news happened
    entities: {},
    // entity → {runId, processed, total}; present while that entity syncs
    active: {},
    // run id (or "waiting-<entity>" for a request, "dagster-<entity>-<n>" for a run the
    // snapshot counted) → {entity, at}: launched or queued, not syncing yet
    queued: new Map(),
    // entity → Dagster runs started but not syncing yet, from the snapshot
    running: {},
    // what the card says under its buttons: {text, kind, entity?, syncLogId?}
    message: null,
    // entity → when its latest sync start was seen live
    startedAt: {},
    // when the newest sync end seen live happened (the health snapshot may be cached, older)
    liveAt: null,
    // entity → open rejected rows (to fix in 1C), from the health snapshot
    openRejects: {},
  };
}

const newest = (a, b) => (!a ? b : !b ? a : a > b ? a : b);

/**
 * Fold the sidecar's GET /integrations/{id}/health answer into the state. The answer may be
 * cached for a few seconds, so news the WebSocket already brought is never rolled back.
 */
export function applyHealth(state, health) {
  const circuit = health.circuit || {};
  const checkedAt = parseTime(health.checked_at);
  if (!state.circuit.asOf || (checkedAt && checkedAt > state.circuit.asOf)) {
    state.circuit = {
      state: circuit.state || "closed",
      retryAt: parseTime(circuit.retry_at),
      firstError: circuit.first_error ?? null,
      baseUrl: circuit.base_url ?? null,
      asOf: checkedAt,
    };
  }
  // Requests waiting for the Dagster daemon, and the runs Dagster holds, come with the
  // snapshot, so they survive a reload; a start seen live after the snapshot wins over it.
  const runsKnown = health.dagster_runs === true;
  for (const [key, entry] of [...state.queued.entries()]) {
    const counted = key.startsWith("waiting-") || key.startsWith("dagster-");
    // With Dagster's own count, a run seen queued live before the snapshot is in that count.
    const seenBefore = runsKnown && (!checkedAt || !entry.at || entry.at <= checkedAt);
    if (counted || seenBefore) state.queued.delete(key);
  }
  state.running = {};
  for (const [entity, info] of Object.entries(health.entities || {})) {
    const started = state.startedAt[entity];
    if (state.active[entity] || (started && (!checkedAt || started > checkedAt))) continue;
    // A sync of the entity seen starting after the request was made is that request's.
    const requestedAt = parseTime(info.waiting_since);
    const taken = started && requestedAt && started > requestedAt;
    if (info.waiting && !taken) state.queued.set(`waiting-${entity}`, { entity, at: checkedAt });
    for (let n = 0; n < (info.queued_runs || 0); n += 1) {
      state.queued.set(`dagster-${entity}-${n}`, { entity, at: checkedAt });
    }
    const ended = state.entities[entity]?.asOf;
    if (info.running_runs && !(ended && checkedAt && ended > checkedAt)) state.running[entity] = info.running_runs;
  }
  // Rows 1C sent that were not taken: only the snapshot knows them (a sync end re-reads it).
  state.openRejects = {};
  for (const [entity, info] of Object.entries(health.entities || {})) {
    if (info.open_rejects) state.openRejects[entity] = info.open_rejects;
  }
  let snapshotAt = null;
  for (const [entity, info] of Object.entries(health.entities || {})) {
    const last = info.last_sync;
    const asOf = last ? parseTime(last.finished_at) || parseTime(last.started_at) : null;
    snapshotAt = newest(snapshotAt, asOf);
    const known = state.entities[entity];
    const lastSuccessAt = newest(parseTime(info.last_success_at), known?.lastSuccessAt ?? null);
    if (known?.asOf && (!asOf || known.asOf > asOf)) {
      known.lastSuccessAt = lastSuccessAt;
      continue;
    }
    state.entities[entity] = {
      lastSuccessAt,
      lastStatus: last?.status ?? null,
      lastError: last?.error ?? null,
      asOf,
    };
    // The outcome shown for a sync that just ended takes its duration from the log row.
    const message = state.message;
    if (last && message?.syncLogId === last.id && message.durationS == null) {
      Object.assign(message, outcomeOf(entity, last.status, logDurationSeconds(last), last.id));
    }
    // The snapshot lists finished syncs only; one that ended unseen (events lost) stops here.
    if (last && state.active[entity]?.runId && state.active[entity].runId === last.run_id) {
      delete state.active[entity];
    }
  }
  if (!state.liveAt || (snapshotAt && snapshotAt >= state.liveAt)) {
    state.errorStreak = Number(health.error_streak ?? 0);
  }
}

/** The newest failed entity sync still standing, as {entity, error}, or null. */
export function failureOf(state) {
  let failure = null;
  for (const [entity, info] of Object.entries(state.entities)) {
    if (info.lastStatus === "failed" && (!failure || (info.asOf && info.asOf > failure.asOf))) {
      failure = { entity, error: info.lastError, asOf: info.asOf };
    }
  }
  return failure;
}

/** The one status a card shows, most pressing first. */
export function statusOf(state) {
  if (Object.keys(state.active).length > 0 || Object.keys(state.running).length > 0) return "syncing";
  if (state.queued.size > 0) return "queued";
  if (state.circuit.state === "open") return "circuit_open";
  if (!state.integration.enabled) return "disabled";
  if (failureOf(state)) return "failed";
  const ran = Object.values(state.entities).some((info) => info.lastStatus || info.lastSuccessAt);
  return ran ? "idle" : "never";
}

/** The card's message for a sync that ended: "Завершено за 19 с: Номенклатура." */
function outcomeOf(entity, status, durationS, syncLogId) {
  const took = durationS == null ? "" : ` за ${formatDuration(durationS)}`;
  const text =
    status === "failed"
      ? `${entityName(entity)}: синхронизация завершилась ошибкой${took}.`
      : status === "partial"
        ? `Завершено${took}, часть строк 1С не принята: ${entityName(entity)}.`
        : `Завершено${took}: ${entityName(entity)}.`;
  return { text, kind: status === "failed" ? "error" : "ok", entity, syncLogId, durationS, outcome: true };
}

/** Overall progress of the running entity syncs as {processed, total} (total null if unknown). */
function progressOf(state) {
  let processed = 0;
  let total = 0;
  let known = true;
  for (const run of Object.values(state.active)) {
    processed += run.processed || 0;
    if (typeof run.total === "number" && run.total > 0) total += run.total;
    else known = false;
  }
  return { processed, total: known && total > 0 ? total : null };
}

/** Alerts the states raise on their own (repeated failures, open circuits). */
export function derivedAlerts(states) {
  const alerts = [];
  for (const state of states) {
    const name = state.integration.name;
    if (state.circuit.state === "open") {
      const { retryAt, baseUrl, firstError } = state.circuit;
      const where = baseUrl ? ` (${baseUrl})` : "";
      const until = retryAt ? `, повторная попытка после ${formatDateTime(retryAt)}` : "";
      const cause = firstError ? ` Первая причина: ${errorText(firstError)}` : "";
      alerts.push(`«${name}»: 1С${where} не отвечает, обращения приостановлены${until}.${cause}`);
    }
    if (state.errorStreak >= REPEATED_FAILURES) {
      alerts.push(`«${name}»: ${formatInt(state.errorStreak)} неудачных синхронизаций подряд.`);
    }
  }
  return alerts;
}

/** The integration an event is about, wherever the publisher put it. */
export function integrationOf(event) {
  const data = event.data || {};
  const tags = data.tags || {};
  return data.integration_id ?? tags["tradeos/integration"] ?? null;
}

function entityOfRun(data) {
  const tags = data.tags || {};
  return data.entity ?? tags["tradeos/entity"] ?? null;
}

/**
 * Apply one live event to a state. Returns true when the durable picture changed (a sync
 * ended), so the caller reloads the REST snapshot, logs and charts.
 */
export function applyEvent(state, event) {
  const data = event.data || {};
  const entity = data.entity;
  switch (event.type) {
    case "sync.started": {
      state.startedAt[entity] = parseTime(event.ts) || new Date();
      // This run leaves the queue: by its id, else one waiting entry of its entity.
      if (!state.queued.delete(data.run_id)) {
        const key = [...state.queued.keys()].find((k) => state.queued.get(k).entity === entity);
        if (key !== undefined) state.queued.delete(key);
      }
      delete state.running[entity];
      state.active[entity] = { runId: data.run_id ?? null, processed: 0, total: data.total ?? null };
      return false;
    }
    case "sync.progress": {
      const run = state.active[entity] || (state.active[entity] = { runId: data.run_id ?? null });
      run.processed = data.processed ?? run.processed;
      run.total = data.total ?? run.total;
      return false;
    }
    case "sync.finished":
    case "sync.failed": {
      const at = parseTime(event.ts) || new Date();
      const failed = event.type === "sync.failed";
      delete state.active[entity];
      const known = state.entities[entity] || {};
      state.entities[entity] = {
        lastSuccessAt: failed ? known.lastSuccessAt ?? null : at,
        lastStatus: failed ? "failed" : data.status || "success",
        lastError: failed ? data.error ?? null : null,
        asOf: at,
      };
      state.errorStreak = failed ? state.errorStreak + 1 : 0;
      state.liveAt = at;
      // The outcome replaces whatever the card said ("queued…" included).
      state.message = outcomeOf(
        entity,
        failed ? "failed" : data.status || "success",
        typeof data.duration_s === "number" ? data.duration_s : null,
        data.sync_log_id ?? null,
      );
      return true;
    }
    case "run.queued":
    case "run.started": {
      if (!data.run_id) return false;
      const runEntity = entityOfRun(data);
      if (event.type === "run.started" && !state.queued.has(data.run_id)) {
        // A run the snapshot counted as queued starts: it is that count's, not a new one.
        const counted = [...state.queued.keys()].find((k) => k.startsWith(`dagster-${runEntity}-`));
        if (counted !== undefined) state.queued.delete(counted);
      }
      state.queued.set(data.run_id, { entity: runEntity, at: parseTime(event.ts) || new Date() });
      return false;
    }
    case "run.succeeded":
    case "run.canceled":
      state.queued.delete(data.run_id);
      return true;
    case "run.failed":
      state.queued.delete(data.run_id);
      for (const [key, run] of Object.entries(state.active)) if (run.runId === data.run_id) delete state.active[key];
      return true;
    case "integration.status":
      state.circuit = {
        state: data.state ?? state.circuit.state,
        retryAt: parseTime(data.retry_at),
        firstError: data.first_error ?? null,
        baseUrl: data.base_url ?? null,
        asOf: parseTime(event.ts) || new Date(),
      };
      return false;
    default:
      return false;
  }
}

/** One integration's card; built once, then updated in place so focus and layout stay put. */
export class IntegrationCard {
  /**
   * @param {object} state from emptyState()
   * @param {{onChanged: () => void, onEdit?: (integration: object) => void,
   *          toast: (text: string, kind?: string) => void}} hooks
   */
  constructor(state, hooks) {
    this.state = state;
    this.hooks = hooks;
    const id = state.integration.id;
    this.badge = el("span", { class: "badge" });
    this.title = el("h3", {});
    this.subtitle = el("p", { class: "muted small" });
    this.progressBar = el("div", { class: "progress-bar" });
    this.progressText = el("span", { class: "small" });
    this.progress = el(
      "div",
      { class: "progress", hidden: true },
      el("div", { class: "progress-track", role: "progressbar", "aria-label": "Ход синхронизации" }, this.progressBar),
      this.progressText,
    );
    this.entityBody = el("tbody", {});
    this.problem = el("p", { class: "problem small", hidden: true });
    this.rejects = el("p", { class: "rejects small", hidden: true });
    this.result = el("p", { class: "result small", role: "status", hidden: true });
    this.syncButton = el("button", { type: "button", class: "primary", text: "Синхронизировать" });
    this.toggleButton = el("button", { type: "button" });
    this.testButton = el("button", { type: "button", text: "Проверить связь" });
    this.editButton = el("button", { type: "button", text: "Изменить" });
    this.editButton.addEventListener("click", () => hooks.onEdit?.(this.state.integration));
    this.syncButton.addEventListener("click", () => this.syncNow());
    this.toggleButton.addEventListener("click", () => this.toggleEnabled());
    this.testButton.addEventListener("click", () => this.testConnection());
    this.node = el(
      "article",
      { class: "card", "data-integration": id },
      el("header", { class: "card-head" }, el("div", {}, this.title, this.subtitle), this.badge),
      this.progress,
      el(
        "table",
        { class: "entities" },
        el("thead", {}, el("tr", {},
          el("th", { scope: "col", text: "Данные" }),
          el("th", { scope: "col", text: "Последний успех" }),
        )),
        this.entityBody,
      ),
      this.problem,
      this.rejects,
      el("div", { class: "actions" }, this.syncButton, this.toggleButton, this.testButton, this.editButton),
      this.result,
    );
    this.update();
  }

  update() {
    const { state } = this;
    const { integration } = state;
    const status = statusOf(state);
    this.node.dataset.status = status;
    // A standing failure keeps the card red while other runs wait or sync.
    const standing = status === "circuit_open" || failureOf(state) !== null;
    this.node.classList.toggle("alert", standing || state.errorStreak >= REPEATED_FAILURES);
    this.title.textContent = integration.name;
    const protocol = PROTOCOL_NAMES[integration.protocol] || integration.protocol;
    this.subtitle.textContent = `${integration.id} · ${protocol} · ${integration.base_url}`;
    this.badge.textContent = statusLabel(state, status);
    this.badge.dataset.status = status;

    const syncing = status === "syncing";
    this.progress.hidden = !syncing;
    if (syncing && Object.keys(state.active).length === 0) {
      // Dagster started the run; the sync has not reported yet (known from the snapshot).
      this.progressBar.style.width = "100%";
      this.progressBar.classList.add("indeterminate");
      this.progressText.textContent = `${Object.keys(state.running).map(entityName).join(", ")}: запуск…`;
    } else if (syncing) {
      const { processed, total } = progressOf(state);
      const entities = Object.keys(state.active).map(entityName).join(", ");
      if (total) {
        const share = Math.min(processed / total, 1);
        this.progressBar.style.width = `${(share * 100).toFixed(1)}%`;
        this.progressBar.parentElement.setAttribute("aria-valuenow", String(Math.round(share * 100)));
        this.progressText.textContent = `${entities}: ${formatInt(processed)} из ${formatInt(total)} (${formatPercent(share)})`;
      } else {
        this.progressBar.style.width = "100%";
        this.progressBar.parentElement.removeAttribute("aria-valuenow");
        this.progressText.textContent = processed ? `${entities}: ${formatInt(processed)} строк` : `${entities}: запуск…`;
      }
      this.progressBar.classList.toggle("indeterminate", !total);
    }

    this.renderEntities();
    const failure = failureOf(state);
    if (failure) {
      this.problem.replaceChildren(
        ...errorNodes(`${entityName(failure.entity)}: `, failure.error || "синхронизация завершилась с ошибкой"),
      );
      this.problem.hidden = false;
    } else setMessage(this.problem, "");
    this.renderMessage(status);
    const rejects = Object.entries(state.openRejects || {});
    setMessage(
      this.rejects,
      rejects.length
        ? `Не принято строк 1С (исправьте в 1С): ${rejects.map(([entity, n]) => `${entityName(entity)} — ${formatInt(n)}`).join(", ")}`
        : "",
    );
    this.toggleButton.textContent = integration.enabled ? "Отключить" : "Включить";
    this.syncButton.disabled = !integration.enabled || this.busy === true;
  }

  renderEntities() {
    const rows = [];
    const known = new Set([...SYNC_ENTITIES, ...Object.keys(this.state.entities)]);
    for (const entity of known) {
      if (!(entity in ENTITY_NAMES) && !this.state.entities[entity]) continue;
      const info = this.state.entities[entity] || {};
      const when = info.lastSuccessAt;
      rows.push(
        el("tr", { "data-entity": entity, class: info.lastStatus === "failed" ? "failed" : null },
          el("th", { scope: "row", text: entityName(entity) }),
          el("td", { title: when ? formatDateTime(when) : null, text: formatAge(when) }),
        ),
      );
    }
    this.entityBody.replaceChildren(...rows);
  }

  /** The message under the buttons; a green note from a click never stays on a red card. */
  renderMessage(status) {
    const message = this.state.message;
    // A note from a click made before the card turned red is out of date.
    const failure = failureOf(this.state);
    const redSince = newest(
      failure?.asOf ?? null,
      status === "circuit_open" ? this.state.circuit.asOf : null,
    );
    const stale = message && message.kind === "ok" && !message.outcome && redSince && redSince > message.at;
    if (!message || stale) {
      this.result.hidden = true;
      this.result.textContent = "";
      delete this.result.dataset.kind;
      return;
    }
    this.result.textContent = message.text;
    this.result.dataset.kind = message.kind;
    this.result.hidden = false;
  }

  showResult(text, kind) {
    this.state.message = { text, kind, at: new Date() };
    this.renderMessage(statusOf(this.state));
  }

  async run(button, action) {
    this.busy = true;
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    try {
      await action();
    } catch (error) {
      const message = error instanceof ApiError ? error.message : String(error);
      this.showResult(message, "error");
    } finally {
      this.busy = false;
      button.removeAttribute("aria-busy");
      button.disabled = false;
      this.update();
    }
  }

  syncNow() {
    return this.run(this.syncButton, async () => {
      const answer = await api(`/integrations/${encodeURIComponent(this.state.integration.id)}/sync`, {
        method: "POST",
        body: { entities: SYNC_ENTITIES, full: false },
      });
      // Runs are launched in the order asked; what Dagster did not take waits as a request.
      // Keyed as the snapshot and the run events key them, so none is counted twice.
      const runIds = answer?.run_ids || [];
      const at = new Date();
      SYNC_ENTITIES.forEach((entity, i) => {
        const key = i < runIds.length ? runIds[i] : `waiting-${entity}`;
        this.state.queued.set(key, { entity, at });
      });
      this.showResult(
        runIds.length ? `Синхронизация поставлена в очередь (запусков: ${formatInt(runIds.length)}).` : "Запрос на синхронизацию принят.",
        "ok",
      );
    });
  }

  toggleEnabled() {
    const enable = !this.state.integration.enabled;
    return this.run(this.toggleButton, async () => {
      const answer = await api(
        `/integrations/${encodeURIComponent(this.state.integration.id)}/${enable ? "enable" : "disable"}`,
        { method: "POST" },
      );
      this.state.integration = { ...this.state.integration, ...(answer || {}), enabled: answer?.enabled ?? enable };
      this.showResult(enable ? "Интеграция включена." : "Интеграция отключена: плановые синхронизации остановлены.", "ok");
      this.hooks.onChanged();
    });
  }

  testConnection() {
    return this.run(this.testButton, async () => {
      const answer = await api(`/integrations/${encodeURIComponent(this.state.integration.id)}/test-connection`, {
        method: "POST",
      });
      if (answer.ok) {
        const version = answer.version ? `версия ${answer.version}, ` : "";
        this.showResult(`Связь с 1С есть: ${version}${formatInt(answer.latency_ms)} мс.`, "ok");
      } else {
        this.showResult(`Нет связи с 1С: ${answer.error || "неизвестная ошибка"}.`, "error");
      }
    });
  }
}

export { emptyState };
