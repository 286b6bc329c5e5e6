/** The API key for a gateway that requires one (GET /config → auth_required), kept in localStorage. */
const KEY = "uq.apiKey";

export function getApiKey(): string {
  try {
    return localStorage.getItem(KEY) ?? "";
  } catch {
    return "";
  }
}

export function setApiKey(key: string): void {
  if (key) localStorage.setItem(KEY, key);
  else localStorage.removeItem(KEY);
}

/** The WebSocket URL with the key as `api_key` (browsers cannot set headers on a WebSocket). */
export function withApiKey(url: string, key: string): string {
  if (!key) return url;
  return `${url}${url.includes("?") ? "&" : "?"}api_key=${encodeURIComponent(key)}`;
}
