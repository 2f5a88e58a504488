// Integration cards: live status, progress, last successful sync per entity, actions.
//
// The REST snapshot (integration + its /health) is the base; WebSocket events move the
// status between snapshots (queued → syncing with progress → idle/failed) with no reload.

import { api, ApiError } from "./api.js";
import { el, setMessage } from "./dom.js";
import { PROTOCOL_NAMES } from "./integration-form.js";
import { ENTITY_NAMES, entityName, formatAge, formatDateTime, formatInt, formatPercent, parseTime } from "./format.js";

export const STATUS_NAMES = {
  idle: "Ожидание",
  queued: "В очереди",
  syncing: "Синхронизация",
  failed: "Ошибка",
  circuit_open: "1С недоступна",
  disabled: "Отключена",
};

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
    // run id (or request key) → entity; launched or queued, not syncing yet
    queued: new Map(),
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
    state.circuit = { state: circuit.state || "closed", retryAt: parseTime(circuit.retry_at), asOf: checkedAt };
  }
  // Requests waiting for the Dagster daemon come with the snapshot, so they survive a reload;
  // a start seen live after the snapshot was taken wins over it.
  for (const key of [...state.queued.keys()]) if (key.startsWith("waiting-")) state.queued.delete(key);
  for (const [entity, info] of Object.entries(health.entities || {})) {
    const started = state.startedAt[entity];
    if (info.waiting && !state.active[entity] && !(started && (!checkedAt || started > checkedAt))) {
      state.queued.set(`waiting-${entity}`, entity);
    }
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
  if (Object.keys(state.active).length > 0) return "syncing";
  if (state.queued.size > 0) return "queued";
  if (state.circuit.state === "open") return "circuit_open";
  if (!state.integration.enabled) return "disabled";
  if (failureOf(state)) return "failed";
  return "idle";
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
      const until = state.circuit.retryAt ? `, повторная попытка после ${formatDateTime(state.circuit.retryAt)}` : "";
      alerts.push(`«${name}»: 1С не отвечает, обращения приостановлены${until}.`);
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
    case "sync.started":
      state.startedAt[entity] = parseTime(event.ts) || new Date();
      state.queued.forEach((queuedEntity, key) => {
        if (key === data.run_id || queuedEntity === entity) state.queued.delete(key);
      });
      state.active[entity] = { runId: data.run_id ?? null, processed: 0, total: data.total ?? null };
      return false;
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
      return true;
    }
    case "run.queued":
    case "run.started":
      if (data.run_id) state.queued.set(data.run_id, entityOfRun(data));
      return false;
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
    this.node.classList.toggle("alert", status === "circuit_open" || status === "failed" || state.errorStreak >= REPEATED_FAILURES);
    this.title.textContent = integration.name;
    const protocol = PROTOCOL_NAMES[integration.protocol] || integration.protocol;
    this.subtitle.textContent = `${integration.id} · ${protocol} · ${integration.base_url}`;
    this.badge.textContent = STATUS_NAMES[status];
    this.badge.dataset.status = status;

    const syncing = status === "syncing";
    this.progress.hidden = !syncing;
    if (syncing) {
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
    setMessage(
      this.problem,
      failure ? `${entityName(failure.entity)}: ${failure.error || "синхронизация завершилась с ошибкой"}` : "",
    );
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

  showResult(text, kind) {
    this.result.textContent = text;
    this.result.dataset.kind = kind;
    this.result.hidden = false;
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
      const runIds = answer?.run_ids || [];
      SYNC_ENTITIES.forEach((entity, i) => {
        const key = i < runIds.length ? runIds[i] : `request-${answer?.request_id}-${entity}`;
        this.state.queued.set(key, entity);
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
