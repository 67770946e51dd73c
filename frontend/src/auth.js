// The dashboard's access token, for nodes started with `--auth_file`.
//
// A node with auth on answers 401 to any API request without a valid token. The dashboard
// then asks the user for one (the token prompt), keeps it in sessionStorage so it lasts for
// the browser tab's session and no longer, and sends it with every request: as
// `Authorization: Bearer <token>` on fetches, and as `?token=<token>` on the websocket URL,
// since a browser cannot set headers on a websocket.
//
// The gate turns 401s into one prompt: however many requests are refused at once, the user is
// asked once, and every refused request waits for the answer and is then sent again. A 401 to
// a request that carried the stored token means the token is wrong (or was removed from the
// node's auth file): it is forgotten and the prompt says "token refused".

/** sessionStorage key of the token. */
export const TOKEN_KEY = 'minitrue.token';

/** The page's sessionStorage, or null where it cannot be used (some private modes throw). */
function sessionStorageOrNull() {
  try {
    const storage = globalThis.sessionStorage;
    if (!storage) return null;
    const probe = `${TOKEN_KEY}.probe`;
    storage.setItem(probe, '1');
    storage.removeItem(probe);
    return storage;
  } catch {
    return null;
  }
}

/**
 * The stored token: `get()` (null when none), `set(token)`, `clear()`, and `subscribe(fn)`
 * (called after every change; returns an unsubscribe function). Without a usable storage the
 * token lives in memory, so the dashboard still works, for one page load.
 */
export function createTokenStore(storage = sessionStorageOrNull()) {
  let memory = null;
  const listeners = new Set();

  const read = () => {
    if (!storage) return memory;
    try {
      return storage.getItem(TOKEN_KEY);
    } catch {
      return memory;
    }
  };
  const write = (value) => {
    memory = value;
    if (!storage) return;
    try {
      if (value === null) storage.removeItem(TOKEN_KEY);
      else storage.setItem(TOKEN_KEY, value);
    } catch {
      // Storage full or forbidden: the in-memory copy still serves this page.
    }
  };
  const changed = () => {
    for (const listener of listeners) listener();
  };

  return {
    get: () => {
      const value = read();
      return typeof value === 'string' && value !== '' ? value : null;
    },
    set(token) {
      write(token);
      changed();
    },
    clear() {
      write(null);
      changed();
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}

/** Headers that carry `token` on a fetch; none without a token. */
export function authHeaders(token) {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

/** A websocket URL with `token=` added to its query (URL-encoded); unchanged without a token. */
export function withToken(wsUrl, token) {
  if (!token || !wsUrl) return wsUrl;
  const hashAt = wsUrl.indexOf('#');
  const base = hashAt === -1 ? wsUrl : wsUrl.slice(0, hashAt);
  const hash = hashAt === -1 ? '' : wsUrl.slice(hashAt);
  const separator = base.includes('?') ? '&' : '?';
  return `${base}${separator}token=${encodeURIComponent(token)}${hash}`;
}

/**
 * The 401 gate over a token store. `unauthorized({ sentToken, message, node })` is called by
 * the cluster client when a node answered 401 to a request sent with `sentToken` (null when
 * none was sent); it resolves once a token worth retrying with is stored. `prompt()` is what
 * the token prompt shows: null when closed, else `{ reason, message, node }` where reason is
 * 'required' (no token was sent) or 'refused' (the stored token was). `submit(token)` stores a
 * token and releases every waiting request; `subscribe(fn)` is called when `prompt()` changes.
 */
export function createAuthGate(store) {
  let pending = null; // { reason, message, node, resolve, promise }
  // What prompt() returns: one object per state, so React's useSyncExternalStore sees no
  // change between changes.
  let shown = null;
  const listeners = new Set();
  const changed = () => {
    shown = pending ? { reason: pending.reason, message: pending.message, node: pending.node } : null;
    for (const listener of listeners) listener();
  };

  return {
    store,
    token: () => store.get(),
    prompt: () => shown,
    unauthorized({ sentToken = null, message = '', node = null } = {}) {
      const current = store.get();
      // A newer token was entered while this request was on its way: just retry with it.
      if (current !== null && current !== sentToken) return Promise.resolve();
      if (current !== null) store.clear();
      const reason = sentToken ? 'refused' : 'required';
      if (pending === null) {
        let resolve;
        const promise = new Promise((r) => { resolve = r; });
        pending = { reason, message, node, resolve, promise };
        changed();
      } else if (reason === 'refused' && pending.reason !== 'refused') {
        pending = { ...pending, reason, message, node };
        changed();
      }
      return pending.promise;
    },
    /** Stores `token` (trimmed) and lets the waiting requests retry; false when it is empty. */
    submit(token) {
      const value = typeof token === 'string' ? token.trim() : '';
      if (value === '') return false;
      store.set(value);
      const waiting = pending;
      pending = null;
      waiting?.resolve();
      changed();
      return true;
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}
