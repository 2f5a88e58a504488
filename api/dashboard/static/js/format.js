// Russian formatting of numbers, dates, durations and ages (Intl, locale ru-RU).
//
// Every moment is shown in the browser's time zone with its UTC offset stated ("21:30:05
// UTC+3"); the top bar says which zone that is. The API speaks ISO 8601 in UTC.

const LOCALE = "ru-RU";
const integer = new Intl.NumberFormat(LOCALE, { maximumFractionDigits: 0 });
const decimal = new Intl.NumberFormat(LOCALE, { maximumFractionDigits: 1 });
const percent = new Intl.NumberFormat(LOCALE, { style: "percent", maximumFractionDigits: 1 });
const dateTime = new Intl.DateTimeFormat(LOCALE, { dateStyle: "short", timeStyle: "medium" });
const shortTime = new Intl.DateTimeFormat(LOCALE, { hour: "2-digit", minute: "2-digit" });
const dayTime = new Intl.DateTimeFormat(LOCALE, {
  day: "2-digit", month: "2-digit", hour: "2-digit", minute: "2-digit",
});
const relative = new Intl.RelativeTimeFormat(LOCALE, { numeric: "auto", style: "short" });

export const ENTITY_NAMES = {
  nomenclature: "Номенклатура",
  stock: "Остатки",
  orders: "Заказы",
  order_export: "Выгрузка заказов",
};

export const SYNC_STATUS_NAMES = {
  running: "Выполняется",
  success: "Успешно",
  partial: "Частично",
  failed: "Ошибка",
};

export const entityName = (entity) => ENTITY_NAMES[entity] || entity;
export const syncStatusName = (status) => SYNC_STATUS_NAMES[status] || status;

/** 12 345 (non-breaking thin spaces as ru-RU writes them); "—" for missing values. */
export function formatInt(value) {
  return value === null || value === undefined ? "—" : integer.format(value);
}

export function formatDecimal(value) {
  return value === null || value === undefined ? "—" : decimal.format(value);
}

/** A share 0..1 as "97,5 %". */
export function formatPercent(share) {
  return share === null || share === undefined ? "—" : percent.format(share);
}

/** Parse an ISO timestamp from the API; null when absent or malformed. */
export function parseTime(value) {
  if (!value) return null;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? null : date;
}

/** "UTC+3", "UTC−4:30", "UTC" for a moment in the browser's zone (offsets change with DST). */
export function utcOffset(date = new Date()) {
  const minutes = -date.getTimezoneOffset();
  if (minutes === 0) return "UTC";
  const abs = Math.abs(minutes);
  const hours = Math.floor(abs / 60);
  const rest = abs % 60;
  return `UTC${minutes > 0 ? "+" : "−"}${hours}${rest ? `:${String(rest).padStart(2, "0")}` : ""}`;
}

/** The browser's zone as the page names it: "Europe/Moscow, UTC+3". */
export function localZoneLabel(now = new Date()) {
  const name = Intl.DateTimeFormat().resolvedOptions().timeZone;
  return name ? `${name}, ${utcOffset(now)}` : utcOffset(now);
}

/** A moment in the browser's zone with the offset stated: "01.12.2026, 21:30:05 UTC+3". */
export function formatDateTime(value) {
  const date = value instanceof Date ? value : parseTime(value);
  return date ? `${dateTime.format(date)} ${utcOffset(date)}` : "—";
}

const ISO_MOMENT = /\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})/g;

/** A text (an alert from the server) with its ISO 8601 moments written as formatDateTime does. */
export function localizeTimes(text) {
  return text ? String(text).replace(ISO_MOMENT, (iso) => formatDateTime(iso)) : text;
}

/** Chart axis labels: hours for a day-long window, day and hour for longer ones. */
export function formatAxisTime(date, longWindow) {
  return (longWindow ? dayTime : shortTime).format(date);
}

/** Seconds as "850 мс", "12,4 с", "3 мин 05 с", "1 ч 02 мин". */
export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "—";
  if (seconds === 0) return "0 с";
  if (seconds < 1) return `${integer.format(seconds * 1000)} мс`;
  if (seconds < 60) return `${decimal.format(seconds)} с`;
  const total = Math.round(seconds);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  if (h > 0) return `${h} ч ${String(m).padStart(2, "0")} мин`;
  return `${m} мин ${String(s).padStart(2, "0")} с`;
}

/** Age of a moment relative to now: "только что", "5 мин. назад", "3 ч. назад", "вчера". */
export function formatAge(value, now = Date.now()) {
  const date = value instanceof Date ? value : parseTime(value);
  if (!date) return "никогда";
  const seconds = Math.round((date.getTime() - now) / 1000);
  const abs = Math.abs(seconds);
  if (abs < 45) return "только что";
  if (abs < 3600) return relative.format(Math.round(seconds / 60), "minute");
  if (abs < 86400) return relative.format(Math.round(seconds / 3600), "hour");
  return relative.format(Math.round(seconds / 86400), "day");
}

/** Duration of a sync log row in seconds (null while it runs). */
export function logDurationSeconds(log) {
  if (typeof log.duration_seconds === "number") return log.duration_seconds;
  if (typeof log.duration_ms === "number") return log.duration_ms / 1000;
  const start = parseTime(log.started_at);
  const end = parseTime(log.finished_at);
  return start && end ? (end.getTime() - start.getTime()) / 1000 : null;
}
