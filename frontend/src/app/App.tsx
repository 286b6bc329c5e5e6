import { useCallback } from "react";
import { AlertsPanel } from "../features/alerts/components/AlertsPanel";
import { LiveView } from "../features/live/components/LiveView";
import { SessionsPage } from "../features/sessions/components/SessionsPage";
import { ComparePage } from "../features/sessions/components/ComparePage";
import { SessionView, type SessionViewOptions } from "../shared/session/components/SessionView";
import type { SessionStore } from "../shared/session/store/sessionStore";
import { ApiKeyBanner } from "./ApiKeyBanner";
import { ConnectionStatus } from "./ConnectionStatus";
import { routeHref, useRoute } from "./router";
import { useServerConfig } from "./services";
import { useTheme } from "./theme";

export function App() {
  const route = useRoute();
  const [theme, toggleTheme] = useTheme();
  const { error } = useServerConfig();
  // The one place the features meet: both pages show a session with the alerts feature's panel.
  const renderSession = useCallback(
    (store: SessionStore, options?: SessionViewOptions) => (
      <SessionView store={store} theme={theme} AlertsPanel={AlertsPanel} {...options} />
    ),
    [theme],
  );
  return (
    <>
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="top">
        <h1>
          <span aria-hidden="true">ℏₛ</span> Semantic Uncertainty Runtime
        </h1>
        <nav aria-label="Pages">
          <a href={routeHref({ page: "live", sessionId: null })} aria-current={route.page === "live" ? "page" : undefined}>
            Live
          </a>
          <a
            href={routeHref({ page: "sessions", sessionId: null })}
            aria-current={route.page === "sessions" || route.page === "compare" ? "page" : undefined}
          >
            Sessions
          </a>
        </nav>
        <ConnectionStatus />
        <button
          type="button"
          className="theme-toggle"
          onClick={toggleTheme}
          aria-label={`Switch to ${theme === "dark" ? "light" : "dark"} theme`}
          data-testid="theme-toggle"
        >
          {theme === "dark" ? "☀ Light" : "☾ Dark"}
        </button>
      </header>
      {error && (
        <p className="banner error" role="alert">
          {error}
        </p>
      )}
      <ApiKeyBanner />
      <main id="main">
        {route.page === "live" && <LiveView sessionId={route.sessionId} renderSession={renderSession} />}
        {route.page === "sessions" && (
          <SessionsPage sessionId={route.sessionId} params={route.params ?? {}} renderSession={renderSession} />
        )}
        {route.page === "compare" && <ComparePage params={route.params ?? {}} theme={theme} />}
      </main>
    </>
  );
}
