// Recent operations: the newest sync logs, filterable, with a detail dialog per row.

import { api, ApiError, listOf } from "./api.js";
import { byId, el, setMessage } from "./dom.js";
import { errorText, explainError } from "./errors.js";
import {
  entityName,
  formatDateTime,
  formatDuration,
  formatInt,
  logDurationSeconds,
  syncStatusName,
} from "./format.js";

const PAGE_SIZE = 50;

/** Where the Dagster UI is: the sidecar's GET /api/v1/config says (set after sign-in). */
let dagsterBase = null;

export function setDagsterBaseUrl(url) {
  dagsterBase = url ? url.replace(/\/+$/, "") : null;
}

export function dagsterBaseUrl() {
  return dagsterBase;
}

export class OperationsView {
  constructor() {
    this.body = byId("ops-body");
    this.empty = byId("ops-empty");
    this.error = byId("ops-error");
    this.integrationSelect = byId("ops-integration");
    this.statusSelect = byId("ops-status");
    this.dialog = byId("detail");
    this.names = new Map();
    this.loading = null;
    this.integrationSelect.addEventListener("change", () => this.load());
    this.statusSelect.addEventListener("change", () => this.load());
  }

  /** Offer the known integrations in the filter, keeping the current choice. */
  setIntegrations(integrations) {
    const current = this.integrationSelect.value;
    this.names = new Map(integrations.map((i) => [i.id, i.name]));
    const options = [el("option", { value: "", text: "Все" })];
    for (const integration of integrations) {
      options.push(el("option", { value: integration.id, text: integration.name }));
    }
    this.integrationSelect.replaceChildren(...options);
    this.integrationSelect.value = this.names.has(current) ? current : "";
  }

  async load() {
    this.loading?.abort();
    const controller = new AbortController();
    this.loading = controller;
    try {
      const answer = await api("/sync-logs", {
        query: {
          integration_id: this.integrationSelect.value,
          status: this.statusSelect.value,
          limit: PAGE_SIZE,
        },
        signal: controller.signal,
      });
      this.render(listOf(answer));
      setMessage(this.error, "");
    } catch (error) {
      if (error.name === "AbortError") return;
      setMessage(this.error, `Не удалось загрузить операции: ${error.message}`);
    }
  }

  render(logs) {
    const rows = logs.map((log) => this.row(log));
    this.body.replaceChildren(...rows);
    this.empty.hidden = rows.length > 0;
  }

  row(log) {
    const open = el("button", {
      type: "button",
      class: "link",
      text: formatDateTime(log.started_at),
      "aria-label": `Подробности операции ${log.id}`,
    });
    const tr = el(
      "tr",
      { "data-id": log.id, "data-status": log.status, class: log.status === "failed" ? "failed" : null },
      el("td", {}, open),
      el("td", { text: this.names.get(log.integration_id) || log.integration_id }),
      el("td", { text: entityName(log.entity) + (log.full ? " (полная)" : "") }),
      el("td", {}, el("span", { class: "badge", "data-status": log.status, text: syncStatusName(log.status) })),
      el("td", { class: "num", text: formatInt(log.fetched) }),
      el("td", { class: "num", text: formatInt(log.created) }),
      el("td", { class: "num", text: formatInt(log.updated) }),
      el("td", { class: "num", text: formatInt(log.rejected) }),
      el("td", { class: "num", text: formatDuration(logDurationSeconds(log)) }),
      el("td", { class: "error-cell", title: log.error || null, text: log.error ? errorText(log.error) : "" }),
    );
    tr.addEventListener("click", () => this.showDetail(log.id));
    return tr;
  }

  /**
   * Open the operation a link names (?integration=…&operation=…, e.g. from a Dagster
   * materialization): the list filtered to that integration, and the operation's detail.
   */
  async openFromLink(integrationId, operationId) {
    if (integrationId && this.names.has(integrationId)) {
      this.integrationSelect.value = integrationId;
      await this.load();
    }
    if (/^\d+$/.test(operationId || "")) await this.showDetail(operationId);
    else if (operationId) setMessage(this.error, `Ссылка называет операцию «${operationId}», а номер операции — число.`);
  }

  async showDetail(id) {
    let log;
    try {
      log = await api(`/sync-logs/${encodeURIComponent(id)}`);
    } catch (error) {
      setMessage(this.error, `Не удалось открыть операцию ${id}: ${error instanceof ApiError ? error.message : error}`);
      return;
    }
    byId("detail-title").textContent = `Операция №${log.id}: ${entityName(log.entity)}`;
    this.dialog.dataset.operation = String(log.id);
    const fields = [
      ["Интеграция", this.names.get(log.integration_id) || log.integration_id],
      ["Статус", syncStatusName(log.status)],
      ["Режим", log.full ? "полная" : "по изменениям"],
      ["Начало", formatDateTime(log.started_at)],
      ["Окончание", formatDateTime(log.finished_at)],
      ["Длительность", formatDuration(logDurationSeconds(log))],
      ["Получено из 1С", formatInt(log.fetched)],
      ["Создано", formatInt(log.created)],
      ["Обновлено (были в TradeOS и изменились)", formatInt(log.updated)],
      ["Без изменений", formatInt(log.unchanged)],
      ["Помечено удалёнными", formatInt(log.deleted)],
      ["Конфликты", formatInt(log.conflicts)],
      ["Отклонено", formatInt(log.rejected)],
      ["Версия синхронизации", log.sync_version ?? "—"],
      ["Запуск Dagster", log.run_id || "—"],
      ["Ошибка", log.error ? errorText(log.error) : "—"],
    ];
    if (log.error && explainError(log.error)) fields.push(["Исходное сообщение", log.error]);
    byId("detail-fields").replaceChildren(
      ...fields.flatMap(([name, value]) => [el("dt", { text: name }), el("dd", { text: String(value) })]),
    );
    const link = byId("detail-dagster");
    if (log.run_id && dagsterBaseUrl()) {
      link.href = `${dagsterBaseUrl()}/runs/${encodeURIComponent(log.run_id)}`;
      link.hidden = false;
    } else {
      link.removeAttribute("href");
      link.hidden = true;
    }
    const rejects = log.rejects || [];
    const table = byId("detail-rejects");
    table.tBodies[0].replaceChildren(
      ...rejects.map((reject) =>
        el(
          "tr",
          {},
          el("td", { text: reject.onec_id || "—" }),
          el("td", { text: reject.reason }),
          el("td", {}, el("code", { text: reject.payload === null || reject.payload === undefined ? "—" : JSON.stringify(reject.payload) })),
        ),
      ),
    );
    table.hidden = rejects.length === 0;
    byId("detail-rejects-empty").hidden = rejects.length > 0;
    if (!this.dialog.open) this.dialog.showModal();
  }
}
