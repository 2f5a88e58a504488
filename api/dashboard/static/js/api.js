// REST client for the sidecar's /api/v1 routes. The admin token lives in sessionStorage:
// entered once per browser session, gone when the tab closes.

const TOKEN_KEY = "tradeos.adminToken";
const API = "/api/v1";

export class ApiError extends Error {
  /**
   * @param {number} status HTTP status (0 when the server could not be reached)
   * @param {string} message a Russian, user-facing explanation
   */
  constructor(status, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
  }
}

export const getToken = () => sessionStorage.getItem(TOKEN_KEY);
export const setToken = (token) => sessionStorage.setItem(TOKEN_KEY, token);
export const clearToken = () => sessionStorage.removeItem(TOKEN_KEY);

let onUnauthorized = () => {};

/** Register what happens when the server rejects the token (the page logs out). */
export function handleUnauthorized(callback) {
  onUnauthorized = callback;
}

/** A FastAPI error body's `detail` as one line (a string, or a list of validation errors). */
function describeDetail(detail) {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail
      .map((item) => {
        const where =
          item.field ?? (Array.isArray(item.loc) ? item.loc.filter((p) => p !== "body").join(".") : "");
        return where ? `${where}: ${item.msg}` : String(item.msg ?? JSON.stringify(item));
      })
      .join("; ");
  }
  return detail === undefined ? "" : JSON.stringify(detail);
}

/**
 * Call the API with the stored token.
 * @param {string} path e.g. "/integrations"
 * @param {{method?: string, body?: unknown, query?: Record<string, string|number|undefined>,
 *          token?: string, signal?: AbortSignal}} [options]
 * @returns {Promise<any>} the JSON answer (null for an empty body)
 */
export async function api(path, options = {}) {
  const token = options.token ?? getToken();
  const url = new URL(API + path, window.location.origin);
  for (const [key, value] of Object.entries(options.query || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, String(value));
  }
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  let body;
  if (options.body !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(options.body);
  }
  let response;
  try {
    response = await fetch(url, { method: options.method || "GET", headers, body, signal: options.signal });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "Сервер недоступен: проверьте, что сервис TradeOS запущен.");
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null; // not our API answering (a proxy page, another server): report the status only
    }
  }
  if (response.status === 401) {
    // The explicit-token call is the login check: let it report instead of logging out.
    if (options.token === undefined) onUnauthorized();
    throw new ApiError(401, "Неверный токен администратора.");
  }
  if (!response.ok) {
    const detail = describeDetail(data?.detail);
    throw new ApiError(response.status, detail || `Ошибка сервера (HTTP ${response.status}).`);
  }
  return data;
}

/** A list answer as an array, whether the route returns `{data: [...]}` or a bare list. */
export function listOf(answer) {
  if (Array.isArray(answer)) return answer;
  if (answer && Array.isArray(answer.data)) return answer.data;
  return [];
}
