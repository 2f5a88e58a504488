// Two operator panels: the alert channels' last delivery, and a product's history (which sync
// changed which field from what to what).

import { api, listOf } from "./api.js";
import { byId, el, setMessage } from "./dom.js";
import { formatDateTime } from "./format.js";

const CHANNEL_NAMES = { webhook: "Веб-хук", telegram: "Telegram", email: "Эл. почта" };
const DELIVERY_NAMES = { ok: "Доставлено", retrying: "Повтор…", failed: "Ошибка" };
const CHANGE_NAMES = {
  created: "Создан",
  updated: "Изменён",
  deactivated: "Помечен на удаление",
  reactivated: "Снова активен",
  restored: "Восстановлен",
};
const FIELD_NAMES = {
  code: "Код",
  article: "Артикул",
  name: "Наименование",
  full_name: "Полное наименование",
  unit: "Ед. изм.",
  group_onec_id: "Группа",
  price: "Цена",
  vat: "НДС",
  barcodes: "Штрихкоды",
  is_active: "Активен",
};

const show = (value) => {
  if (value === null || value === undefined || value === "") return "—";
  if (Array.isArray(value)) return value.join(", ") || "—";
  if (value === true) return "да";
  if (value === false) return "нет";
  return String(value);
};

/** Alert channels: configured or not, and how their last delivery went. */
export class AlertChannelsView {
  async load() {
    try {
      const channels = listOf(await api("/alerts/channels"));
      byId("channels-body").replaceChildren(...channels.map((c) => this.row(c)));
      setMessage(byId("channels-error"), "");
    } catch (error) {
      setMessage(byId("channels-error"), error.message);
    }
  }

  row(c) {
    const status = c.configured ? DELIVERY_NAMES[c.last_status] || "Ещё не было" : "Не настроен";
    return el(
      "tr",
      { "data-channel": c.channel, "data-status": c.last_status || (c.configured ? "none" : "off") },
      el("td", { text: CHANNEL_NAMES[c.channel] || c.channel }),
      el("td", { text: status }),
      el("td", { text: c.last_attempt_at ? formatDateTime(c.last_attempt_at) : "—" }),
      el("td", { class: "num", text: String(c.delivered_total) }),
      el("td", { class: "num", text: String(c.failed_total) }),
      el("td", { text: c.last_error || "" }),
    );
  }
}

/** A product's history: pick the integration, enter the 1C id. */
export class ProductHistoryView {
  constructor() {
    byId("history-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.load();
    });
  }

  setIntegrations(integrations) {
    const select = byId("history-integration");
    const chosen = select.value;
    select.replaceChildren(...integrations.map((i) => el("option", { value: i.id, text: i.name })));
    if (integrations.some((i) => i.id === chosen)) select.value = chosen;
  }

  async load() {
    const integration = byId("history-integration").value;
    const onecId = byId("history-onec-id").value.trim();
    const body = byId("history-body");
    body.replaceChildren();
    setMessage(byId("history-title-line"), "");
    if (!integration || !onecId) {
      setMessage(byId("history-error"), "Выберите интеграцию и введите код 1С (GUID) товара.");
      return;
    }
    try {
      const path = `/integrations/${encodeURIComponent(integration)}/products/${encodeURIComponent(onecId)}/history`;
      const history = await api(path);
      setMessage(byId("history-error"), "");
      setMessage(
        byId("history-title-line"),
        `${show(history.values.code)} · ${show(history.values.name)} · цена ${show(history.values.price)}`,
      );
      const rows = [];
      for (const entry of [...history.data].reverse()) {
        const head = [
          el("td", { text: String(entry.sync_version) }),
          el("td", { text: entry.changed_at ? formatDateTime(entry.changed_at) : "—" }),
          el("td", { text: CHANGE_NAMES[entry.change] || entry.change }),
        ];
        if (!entry.changes.length) rows.push(el("tr", {}, ...head, el("td", { colspan: "3" })));
        entry.changes.forEach((change, n) => {
          const lead = n === 0 ? head : [el("td"), el("td"), el("td")];
          rows.push(
            el(
              "tr",
              {},
              ...lead,
              el("td", { text: FIELD_NAMES[change.field] || change.field }),
              el("td", { text: show(change.from) }),
              el("td", { text: show(change.to) }),
            ),
          );
        });
      }
      body.replaceChildren(...rows);
    } catch (error) {
      const message =
        error.status === 422 ? "Код 1С должен быть GUID, например 3f2a…-…" : error.message;
      setMessage(byId("history-error"), message);
    }
  }
}
