// Entry point: login with the admin token, then the dashboard (cards, charts, operations,
// alerts) kept current by the WebSocket feed.

import { api, ApiError, clearToken, getToken, handleUnauthorized, listOf, setToken } from "./js/api.js";
import { ChartsView } from "./js/charts.js";
import { byId, el, setMessage } from "./js/dom.js";
import { errorText } from "./js/errors.js";
import { formatDateTime, localizeTimes, localZoneLabel, parseTime } from "./js/format.js";
import { IntegrationForm } from "./js/integration-form.js";
import {
  applyEvent,
  applyHealth,
  derivedAlerts,
  emptyState,
  IntegrationCard,
  integrationOf,
} from "./js/integrations.js";
import { LiveFeed } from "./js/live.js";
import { OperationsView, setDagsterBaseUrl } from "./js/operations.js";
import { AlertChannelsView, ProductHistoryView } from "./js/panels.js";

const CHANNELS = ["sync_updates", "integration_status", "alerts", "runs"];
const REFRESH_DEBOUNCE_MS = 1200;
const AGE_TICK_MS = 30_000;
const HEALTH_TICK_MS = 60_000;
const KEPT_ALERTS = 10;

const newest = (a, b) => (!a ? b : !b ? a : a > b ? a : b);

const LIVE_STATES = {
  connecting: "Подключение…",
  open: "Онлайн",
  reconnecting: "Переподключение…",
};

function toast(text, kind = "info") {
  const node = el("div", { class: "toast", "data-kind": kind, role: kind === "error" ? "alert" : "status", text });
  byId("toasts").append(node);
  setTimeout(() => node.remove(), 6000);
}

class Dashboard {
  constructor() {
    this.cards = new Map();
    this.eventAlerts = [];
    this.timers = [];
    this.pending = { integrations: new Set(), all: false, timer: null };
    this.operations = new OperationsView();
    this.charts = new ChartsView();
    this.channels = new AlertChannelsView();
    this.history = new ProductHistoryView();
    this.form = new IntegrationForm({
      onSaved: (integration, created) => {
        toast(created ? `Интеграция «${integration.name}» добавлена.` : `Интеграция «${integration.name}» сохранена.`);
        this.loadIntegrations();
      },
    });
    byId("integration-add").addEventListener("click", () => this.form.open());
    this.feed = null;
    // When the latest sync end seen live happened; older aggregate answers are re-asked.
    this.newsAt = null;
    byId("alerts-dismiss").addEventListener("click", () => {
      this.eventAlerts = [];
      this.renderAlerts();
    });
  }

  async start() {
    // Addresses come from the sidecar, never from this page's URL.
    const config = await api("/config");
    setDagsterBaseUrl(config.dagster_url);
    byId("timezone").textContent = `Время: ${localZoneLabel()}`;
    await this.loadIntegrations();
    await Promise.all([
      this.operations.load(),
      this.charts.load(),
      this.loadHealth(),
      this.channels.load(),
    ]);
    // A deep link (a Dagster materialization's "dashboard" metadata) names an operation: open it.
    const link = new URLSearchParams(window.location.search);
    if (link.has("operation")) await this.operations.openFromLink(link.get("integration"), link.get("operation"));
    this.feed = new LiveFeed({
      token: getToken(),
      relayUrl: config.ws_url,
      channels: CHANNELS,
      onEvent: (event) => this.onEvent(event),
      onState: (state) => this.onLiveState(state),
      onAuthFailed: () => logout("Токен больше не действует. Войдите снова."),
    });
    this.feed.start();
    this.timers.push(setInterval(() => this.cards.forEach((card) => card.update()), AGE_TICK_MS));
    this.timers.push(setInterval(() => this.loadHealth(), HEALTH_TICK_MS));
    this.timers.push(setInterval(() => this.channels.load(), HEALTH_TICK_MS));
  }

  /** Stop live updates and forget what was shown (the next sign-in starts clean). */
  stop() {
    this.feed?.stop();
    this.feed = null;
    this.timers.forEach(clearInterval);
    this.timers = [];
    clearTimeout(this.pending.timer);
    this.pending = { integrations: new Set(), all: false, timer: null };
    this.cards.clear();
    byId("integrations").replaceChildren();
    this.eventAlerts = [];
    this.renderAlerts();
    this.newsAt = null;
    this.charts.cancelRetry();
  }

  async loadIntegrations() {
    const integrations = listOf(await api("/integrations"));
    const container = byId("integrations");
    const seen = new Set();
    for (const integration of integrations) {
      seen.add(integration.id);
      let card = this.cards.get(integration.id);
      if (card) card.state.integration = integration;
      else {
        card = new IntegrationCard(emptyState(integration), {
          onChanged: () => this.renderAlerts(),
          onEdit: (current) => this.form.open(current),
          toast,
        });
        this.cards.set(integration.id, card);
      }
    }
    for (const [id, card] of this.cards) {
      if (!seen.has(id)) {
        card.node.remove();
        this.cards.delete(id);
      }
    }
    container.replaceChildren(...[...this.cards.values()].map((card) => card.node));
    byId("integrations-empty").hidden = integrations.length > 0;
    byId("integrations-count").textContent = integrations.length ? `${integrations.length}` : "";
    this.operations.setIntegrations(integrations);
    this.charts.setIntegrations(integrations);
    this.history.setIntegrations(integrations);
    await Promise.all([...this.cards.keys()].map((id) => this.loadIntegrationHealth(id)));
    this.renderAlerts();
  }

  async loadIntegrationHealth(id) {
    const card = this.cards.get(id);
    if (!card) return;
    try {
      applyHealth(card.state, await api(`/integrations/${encodeURIComponent(id)}/health`));
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) return; // deleted meanwhile
      card.showResult(`Состояние не загружено: ${error.message}`, "error");
    }
    card.update();
  }

  async loadHealth() {
    const pill = byId("health");
    try {
      const health = await api("/health");
      const ok = health.status === "ok";
      pill.dataset.state = ok ? "ok" : "degraded";
      pill.textContent = ok ? "Сервисы в порядке" : "Сервисы: есть проблемы";
      const problems = Object.entries(health.checks || {})
        .filter(([, check]) => (check?.status ?? check) !== "ok")
        .map(([name, check]) => `${name}: ${check?.detail ?? check?.error ?? check?.status ?? check}`);
      pill.title = problems.length ? problems.join("\n") : "База данных, Redis и Dagster отвечают";
    } catch (error) {
      pill.dataset.state = "degraded";
      pill.textContent = "Сервер недоступен";
      pill.title = error.message;
    }
  }

  onLiveState(state) {
    const pill = byId("live");
    const wasDown = pill.dataset.state === "reconnecting";
    pill.dataset.state = state;
    pill.textContent = LIVE_STATES[state];
    // Events older than the relay's retention may be gone: re-read the snapshot after an outage.
    if (state === "open" && wasDown) this.scheduleRefresh(null);
  }

  onEvent(event) {
    if (event.type === "integration.changed") {
      // Created, changed (name, base_url…), switched or deleted through the API: re-read.
      this.scheduleRefresh(null);
      return;
    }
    if (event.channel === "alerts") {
      this.addEventAlert(event);
      // The sidecar delivers it to the channels within seconds: show how that went.
      setTimeout(() => this.channels.load(), 3000);
      return;
    }
    const id = integrationOf(event);
    if (!id) return;
    const card = this.cards.get(id);
    if (!card) {
      this.scheduleRefresh(null); // an integration this page has not seen yet
      return;
    }
    if (applyEvent(card.state, event)) {
      this.newsAt = newest(this.newsAt, parseTime(event.ts));
      this.scheduleRefresh(id);
    }
    card.update();
    this.renderAlerts();
  }

  addEventAlert(event) {
    const data = event.data || {};
    const id = integrationOf(event);
    const name = id ? this.cards.get(id)?.state.integration.name || id : null;
    const when = formatDateTime(event.ts);
    this.eventAlerts.unshift(`${when} — ${name ? `«${name}»: ` : ""}${alertText(data, event.type)}`);
    this.eventAlerts.length = Math.min(this.eventAlerts.length, KEPT_ALERTS);
    this.renderAlerts();
    if (event.type === "alert.resolved") toast(name ? `«${name}»: снова в норме` : "Снова в норме");
    else toast(name ? `Тревога по «${name}»` : "Новая тревога", "error");
  }

  renderAlerts() {
    const derived = derivedAlerts([...this.cards.values()].map((card) => card.state));
    const items = [...derived, ...this.eventAlerts];
    byId("alert-list").replaceChildren(...items.map((text) => el("li", { text })));
    byId("alerts").hidden = items.length === 0;
    byId("alerts-dismiss").hidden = this.eventAlerts.length === 0;
  }

  /** Re-read REST data after syncs end, batching bursts of events into one reload. */
  scheduleRefresh(integrationId) {
    if (integrationId === null) this.pending.all = true;
    else this.pending.integrations.add(integrationId);
    clearTimeout(this.pending.timer);
    this.pending.timer = setTimeout(async () => {
      const { all, integrations } = this.pending;
      this.pending.all = false;
      this.pending.integrations = new Set();
      try {
        if (all) await this.loadIntegrations();
        else await Promise.all([...integrations].map((id) => this.loadIntegrationHealth(id)));
        this.renderAlerts();
        await Promise.all([this.operations.load(), this.charts.load({ notBefore: this.newsAt })]);
      } catch (error) {
        if (!(error instanceof ApiError && error.status === 401)) toast(`Не удалось обновить данные: ${error.message}`, "error");
      }
    }, REFRESH_DEBOUNCE_MS);
  }
}

/** An alert in Russian with its times in the page's zone (the server writes ISO UTC). */
function alertText(data, type) {
  if (data.kind === "circuit_open") {
    const where = data.base_url ? ` (${data.base_url})` : "";
    const streak = data.failures ? `${data.failures} ошибок подряд, ` : "";
    const until = data.retry_at ? `запросы приостановлены до ${formatDateTime(data.retry_at)}` : "запросы приостановлены";
    const cause = data.first_error ? `. Первая причина: ${errorText(data.first_error)}` : "";
    return `1С${where} не отвечает: ${streak}${until}${cause}`;
  }
  return localizeTimes(data.message || errorText(data.error) || data.reason || type);
}

// One instance for the page's life: its views hold listeners on the static markup.
let dashboard = null;

function showLogin(message = "") {
  byId("app").hidden = true;
  byId("login").hidden = false;
  setMessage(byId("login-error"), message);
  byId("login-token").value = "";
  byId("login-token").focus();
}

async function showDashboard() {
  byId("login").hidden = true;
  byId("app").hidden = false;
  dashboard ??= new Dashboard();
  try {
    await dashboard.start();
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) toast(`Не удалось загрузить данные: ${error.message}`, "error");
  }
}

function logout(message = "") {
  dashboard?.stop();
  clearToken();
  showLogin(message);
}

async function login(event) {
  event.preventDefault();
  const input = byId("login-token");
  const token = input.value.trim();
  const button = byId("login-submit");
  if (!token) {
    setMessage(byId("login-error"), "Введите токен.");
    return;
  }
  button.disabled = true;
  try {
    // Any data route checks the token; the integrations list is the cheapest one we need anyway.
    await api("/integrations", { token });
    setToken(token);
    setMessage(byId("login-error"), "");
    await showDashboard();
  } catch (error) {
    setMessage(
      byId("login-error"),
      error instanceof ApiError && error.status === 401 ? "Неверный токен администратора." : error.message,
    );
    input.select();
  } finally {
    button.disabled = false;
  }
}

handleUnauthorized(() => logout("Токен больше не действует. Войдите снова."));
byId("login-form").addEventListener("submit", login);
byId("logout").addEventListener("click", () => logout());
if (getToken()) showDashboard();
else showLogin();
