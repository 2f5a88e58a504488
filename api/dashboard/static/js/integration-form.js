// The form that adds or changes an integration: which 1C, by which protocol, with which
// credentials, and the OData settings (price type, price register, default counterparty).
//
// Create is POST /integrations; edit is PATCH /integrations/{id} with only what the form
// changed (empty credential fields keep the stored ones). For an OData integration that exists,
// "Найти виды цен" asks test-connection for the price types 1C has and offers them in the list.

import { api, ApiError } from "./api.js";
import { byId, el, setMessage } from "./dom.js";

export const PROTOCOL_NAMES = {
  http_service: "HTTP-сервис",
  odata: "OData",
};

export class IntegrationForm {
  /** @param {{onSaved: (integration: object, created: boolean) => void}} hooks */
  constructor(hooks) {
    this.hooks = hooks;
    this.dialog = byId("integration-dialog");
    this.form = byId("integration-form");
    this.title = byId("integration-form-title");
    this.error = byId("integration-form-error");
    this.priceTypes = byId("integration-price-types");
    this.findPrices = byId("integration-find-prices");
    this.editing = null; // the integration being changed, or null for a new one
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.save();
    });
    this.field("protocol").addEventListener("change", () => this.showFields());
    this.field("auth_type").addEventListener("change", () => this.showFields());
    this.findPrices.addEventListener("click", () => this.loadPriceTypes());
    byId("integration-form-cancel").addEventListener("click", () => this.dialog.close());
  }

  field(name) {
    return this.form.elements.namedItem(name);
  }

  /** Open the form: empty for a new integration, filled in for an existing one. */
  open(integration = null) {
    this.editing = integration;
    this.form.reset();
    setMessage(this.error, "");
    this.priceTypes.replaceChildren();
    this.title.textContent = integration ? `Изменить «${integration.name}»` : "Новая интеграция";
    this.field("id").disabled = Boolean(integration);
    if (integration) {
      const options = integration.options || {};
      const values = {
        id: integration.id,
        name: integration.name,
        base_url: integration.base_url,
        protocol: integration.protocol,
        auth_type: integration.auth_type,
        // The stored user name is shown; secrets ("***") are left empty: empty keeps them.
        username: integration.username && integration.username !== "***" ? integration.username : "",
        price_type_key: options.price_type_key || "",
        price_register: options.price_register || "11.5",
        customer_key: options.customer_key || "",
      };
      for (const [name, value] of Object.entries(values)) this.field(name).value = value ?? "";
    }
    this.showFields();
    this.dialog.showModal();
    this.field("name").focus();
  }

  /** OData settings only for OData; the key or the user name and password by auth type. */
  showFields() {
    const odata = this.field("protocol").value === "odata";
    byId("integration-odata").hidden = !odata;
    // The OData interface takes Basic auth only.
    if (odata) this.field("auth_type").value = "basic";
    this.field("auth_type").disabled = odata;
    const basic = this.field("auth_type").value === "basic";
    byId("integration-basic").hidden = !basic;
    byId("integration-key").hidden = basic;
    // A saved integration keeps its secrets unless new ones are typed.
    const needed = !this.editing;
    this.field("api_key").required = needed && !basic;
    this.field("username").required = basic;
    this.field("password").required = needed && basic;
    this.findPrices.hidden = !(odata && this.editing);
  }

  /** The request body: for an edit only the fields that differ from what is stored. */
  body() {
    const value = (name) => this.field(name).value.trim();
    const protocol = value("protocol");
    const authType = protocol === "odata" ? "basic" : value("auth_type");
    const body = { name: value("name"), base_url: value("base_url"), protocol, auth_type: authType };
    if (!this.editing && value("id")) body.id = value("id");
    if (authType === "basic") {
      if (value("username")) body.username = value("username");
      if (this.field("password").value) body.password = this.field("password").value;
    } else if (value("api_key")) {
      body.api_key = value("api_key");
    }
    if (protocol === "odata") {
      body.options = {
        price_type_key: value("price_type_key") || null,
        price_register: value("price_register"),
        customer_key: value("customer_key") || null,
      };
    }
    if (!this.editing) return body;
    const stored = this.editing;
    for (const name of ["name", "base_url", "protocol", "auth_type"]) {
      if (body[name] === stored[name]) delete body[name];
    }
    if (body.username === stored.username && !("password" in body)) delete body.username;
    if (body.options && JSON.stringify(body.options) === JSON.stringify(normalOptions(stored.options))) {
      delete body.options;
    }
    return body;
  }

  async save() {
    setMessage(this.error, "");
    const submit = this.form.querySelector('button[type="submit"]');
    submit.disabled = true;
    try {
      const creating = !this.editing;
      const path = creating ? "/integrations" : `/integrations/${encodeURIComponent(this.editing.id)}`;
      const saved = await api(path, { method: creating ? "POST" : "PATCH", body: this.body() });
      this.dialog.close();
      this.hooks.onSaved(saved, creating);
    } catch (error) {
      setMessage(this.error, error instanceof ApiError ? error.message : String(error));
    } finally {
      submit.disabled = false;
    }
  }

  /** The price types 1C has (from test-connection of the saved integration), as choices. */
  async loadPriceTypes() {
    setMessage(this.error, "");
    this.findPrices.disabled = true;
    try {
      const answer = await api(`/integrations/${encodeURIComponent(this.editing.id)}/test-connection`, {
        method: "POST",
      });
      const types = answer.price_types || [];
      this.priceTypes.replaceChildren(...types.map((t) => el("option", { value: t.key, text: t.name })));
      if (!answer.ok) setMessage(this.error, `Нет связи с 1С: ${answer.error || "неизвестная ошибка"}.`);
      else if (!types.length) setMessage(this.error, "1С не вернула ни одного вида цен (Catalog_ВидыЦен).");
    } catch (error) {
      setMessage(this.error, error instanceof ApiError ? error.message : String(error));
    } finally {
      this.findPrices.disabled = false;
    }
  }
}

/** Stored options in the order and shape the form sends them. */
function normalOptions(options) {
  const o = options || {};
  return {
    price_type_key: o.price_type_key || null,
    price_register: o.price_register || "11.5",
    customer_key: o.customer_key || null,
  };
}
