import { describe, it, expect } from 'vitest';
import { TOKEN_KEY, authHeaders, createAuthGate, createTokenStore, withToken } from './auth.js';

/** A Storage look-alike over a Map. */
function fakeStorage() {
  const map = new Map();
  return {
    map,
    getItem: (k) => (map.has(k) ? map.get(k) : null),
    setItem: (k, v) => { map.set(k, String(v)); },
    removeItem: (k) => { map.delete(k); },
  };
}

describe('token store', () => {
  it('keeps the token in the given storage under its key', () => {
    const storage = fakeStorage();
    const store = createTokenStore(storage);
    expect(store.get()).toBeNull();
    store.set('s3cret');
    expect(storage.map.get(TOKEN_KEY)).toBe('s3cret');
    expect(createTokenStore(storage).get()).toBe('s3cret');
    store.clear();
    expect(storage.map.has(TOKEN_KEY)).toBe(false);
    expect(store.get()).toBeNull();
  });

  it('treats an empty stored value as no token', () => {
    const storage = fakeStorage();
    storage.setItem(TOKEN_KEY, '');
    expect(createTokenStore(storage).get()).toBeNull();
  });

  it('falls back to memory when storage throws', () => {
    const broken = {
      getItem: () => { throw new Error('SecurityError'); },
      setItem: () => { throw new Error('QuotaExceededError'); },
      removeItem: () => { throw new Error('SecurityError'); },
    };
    const store = createTokenStore(broken);
    store.set('abc');
    expect(store.get()).toBe('abc');
    store.clear();
    expect(store.get()).toBeNull();
  });

  it('works without any storage (node has no sessionStorage)', () => {
    const store = createTokenStore(null);
    store.set('abc');
    expect(store.get()).toBe('abc');
  });

  it('tells subscribers about every change', () => {
    const store = createTokenStore(fakeStorage());
    let calls = 0;
    const unsubscribe = store.subscribe(() => { calls += 1; });
    store.set('a');
    store.clear();
    unsubscribe();
    store.set('b');
    expect(calls).toBe(2);
  });
});

describe('credentials on requests', () => {
  it('sends a Bearer header only with a token', () => {
    expect(authHeaders('t0k')).toEqual({ Authorization: 'Bearer t0k' });
    expect(authHeaders(null)).toEqual({});
  });

  it('adds an encoded token= to websocket URLs', () => {
    expect(withToken('ws://localhost:8080/ws', 'abc')).toBe('ws://localhost:8080/ws?token=abc');
    expect(withToken('wss://h/ws', 'a+b/c= &d')).toBe('wss://h/ws?token=a%2Bb%2Fc%3D%20%26d');
    expect(withToken('ws://h/ws?x=1', 'k')).toBe('ws://h/ws?x=1&token=k');
    expect(withToken('ws://h/ws#f', 'k')).toBe('ws://h/ws?token=k#f');
    expect(withToken('ws://h/ws', null)).toBe('ws://h/ws');
  });
});

describe('auth gate', () => {
  it('opens the prompt on a 401 without token and releases the request on submit', async () => {
    const gate = createAuthGate(createTokenStore(fakeStorage()));
    expect(gate.prompt()).toBeNull();
    let released = false;
    const waiting = gate.unauthorized({ sentToken: null, message: 'missing credential', node: 'http://n:1' })
      .then(() => { released = true; });
    expect(gate.prompt()).toEqual({ reason: 'required', message: 'missing credential', node: 'http://n:1' });
    await Promise.resolve();
    expect(released).toBe(false);
    expect(gate.submit('  good  ')).toBe(true);
    await waiting;
    expect(released).toBe(true);
    expect(gate.token()).toBe('good');
    expect(gate.prompt()).toBeNull();
  });

  it('forgets a stored token that got a 401 and says it was refused', () => {
    const store = createTokenStore(fakeStorage());
    store.set('wrong');
    const gate = createAuthGate(store);
    gate.unauthorized({ sentToken: 'wrong', message: 'invalid token' });
    expect(store.get()).toBeNull();
    expect(gate.prompt()).toMatchObject({ reason: 'refused', message: 'invalid token' });
  });

  it('asks once for many refused requests and releases them all', async () => {
    const gate = createAuthGate(createTokenStore(fakeStorage()));
    let changes = 0;
    gate.subscribe(() => { changes += 1; });
    const all = Promise.all([1, 2, 3].map(() => gate.unauthorized({ sentToken: null })));
    expect(changes).toBe(1);
    gate.submit('t');
    await all;
    expect(changes).toBe(2);
  });

  it('retries at once when a newer token was entered meanwhile', async () => {
    const store = createTokenStore(fakeStorage());
    const gate = createAuthGate(store);
    store.set('new');
    await gate.unauthorized({ sentToken: 'old' });
    await gate.unauthorized({ sentToken: null });
    expect(gate.prompt()).toBeNull();
    expect(store.get()).toBe('new');
  });

  it('refuses an empty token', () => {
    const gate = createAuthGate(createTokenStore(fakeStorage()));
    gate.unauthorized({});
    expect(gate.submit('   ')).toBe(false);
    expect(gate.prompt()).not.toBeNull();
  });
});

describe('auth gate snapshots', () => {
  it('returns the same prompt object until the prompt changes (for useSyncExternalStore)', () => {
    const gate = createAuthGate(createTokenStore(null));
    gate.unauthorized({ message: 'missing credential' });
    const first = gate.prompt();
    expect(gate.prompt()).toBe(first);
    gate.unauthorized({ message: 'again' });
    expect(gate.prompt()).toBe(first);
    gate.submit('t');
    expect(gate.prompt()).toBeNull();
  });
});
