/** Light and dark themes: the system's choice unless the user picked one (remembered). */
import { useCallback, useState } from "react";

export type Theme = "light" | "dark";
const KEY = "uq.theme";

function initialTheme(): Theme {
  const saved = localStorage.getItem(KEY);
  if (saved === "light" || saved === "dark") return saved;
  return window.matchMedia?.("(prefers-color-scheme: dark)").matches ? "dark" : "light";
}

export function useTheme(): [Theme, () => void] {
  const [theme, setTheme] = useState<Theme>(() => {
    // Set before the first render, so canvases that read the CSS variables get the right ones.
    const t = initialTheme();
    document.documentElement.dataset.theme = t;
    return t;
  });
  const toggle = useCallback(() => {
    const next: Theme = document.documentElement.dataset.theme === "dark" ? "light" : "dark";
    document.documentElement.dataset.theme = next;
    localStorage.setItem(KEY, next);
    setTheme(next);
  }, []);
  return [theme, toggle];
}
