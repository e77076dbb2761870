// The bearer token: kept for this browser session (sessionStorage) unless the user asks to
// remember it on this device (localStorage). Components re-render through useToken().
import { useSyncExternalStore } from "react";

const KEY = "taskq.token";
const listeners = new Set<() => void>();

function read(): string | null {
  try {
    return sessionStorage.getItem(KEY) ?? localStorage.getItem(KEY);
  } catch {
    return null;
  }
}

let current: string | null = read();
let prompted = false;

export function getToken(): string | null {
  return current;
}

export function setToken(token: string | null, remember = false): void {
  current = token && token.trim() ? token.trim() : null;
  sessionStorage.removeItem(KEY);
  localStorage.removeItem(KEY);
  if (current) (remember ? localStorage : sessionStorage).setItem(KEY, current);
  prompted = false;
  notify();
}

/** Ask for the token (a 401 or 403 from the server). */
export function requestToken(): void {
  if (!prompted) {
    prompted = true;
    notify();
  }
}

export function needsPrompt(): boolean {
  return prompted;
}

export function dismissPrompt(): void {
  prompted = false;
  notify();
}

function notify(): void {
  for (const l of listeners) l();
}

function subscribe(l: () => void): () => void {
  listeners.add(l);
  return () => listeners.delete(l);
}

export function useToken(): { token: string | null; prompt: boolean } {
  const token = useSyncExternalStore(subscribe, getToken);
  const prompt = useSyncExternalStore(subscribe, needsPrompt);
  return { token, prompt };
}
