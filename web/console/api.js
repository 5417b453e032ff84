// The console's only way to the service: the public GraphQL API, over
// POST /graphql and the WebSocket at /graphql/ws.
//
// Tokens live in this module's memory only, never in localStorage or a
// cookie: a reload signs the analyst out, and a script injected elsewhere on
// the origin finds nothing stored. The access token is refreshed a little
// before it expires, so a long shift is not interrupted.

import { createClient } from '/assets/vendor/graphql-ws-5.16.2/client.mjs';

let session = null; // { access, refresh, expiresAt, timer }
let socket = null;
const endedListeners = new Set();

/** An error from the API, with its code and a sentence for a person. */
export class ApiError extends Error {
  constructor(code, message, retryAfter) {
    super(message);
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

/** What to tell a person about `err`, never raw JSON. */
export function friendly(err) {
  if (!(err instanceof ApiError)) {
    return 'Something went wrong in the console. Reload the page and try again.';
  }
  switch (err.code) {
    case 'RATE_LIMITED': {
      const s = Number(err.retryAfter);
      return Number.isFinite(s) && s > 0
        ? `Too many requests. Try again in ${s} second${s === 1 ? '' : 's'}.`
        : 'Too many requests. Try again in a moment.';
    }
    case 'UNAUTHENTICATED':
      return session
        ? 'Your session has ended. Sign in again.'
        : err.message || 'Wrong username or password.';
    case 'FORBIDDEN':
      return 'Your role does not allow this.';
    case 'NOT_FOUND':
      return 'That no longer exists; it may have been removed.';
    case 'BAD_USER_INPUT':
      return err.message;
    case 'NETWORK':
      return 'The service cannot be reached. Check the connection and try again.';
    default:
      return 'The service could not do this. Try again; if it keeps failing, tell an administrator.';
  }
}

/** Calls `fn` when the session ends without the analyst signing out. */
export function onSessionEnded(fn) {
  endedListeners.add(fn);
  return () => endedListeners.delete(fn);
}

export function signedIn() {
  return session !== null;
}

async function post(query, variables, token) {
  const headers = { 'Content-Type': 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  let res;
  try {
    res = await fetch('/graphql', {
      method: 'POST',
      headers,
      body: JSON.stringify({ query, variables }),
      credentials: 'omit',
    });
  } catch (e) {
    throw new ApiError('NETWORK', 'network');
  }
  let body;
  try {
    body = await res.json();
  } catch (e) {
    throw new ApiError(res.status === 429 ? 'RATE_LIMITED' : 'NETWORK', 'unreadable answer',
      res.headers.get('Retry-After'));
  }
  if (body.errors && body.errors.length) {
    const e = body.errors[0];
    const ext = e.extensions || {};
    throw new ApiError(ext.code || 'INTERNAL_SERVER_ERROR', e.message || '',
      ext.retryAfter ?? res.headers.get('Retry-After'));
  }
  return body.data;
}

function schedule(expiresIn) {
  if (session.timer) clearTimeout(session.timer);
  // A minute early, or at four fifths of a short lifetime.
  const lead = Math.min(60, expiresIn / 5);
  const wait = Math.max(1, expiresIn - lead) * 1000;
  session.timer = setTimeout(() => {
    refresh().catch(() => {});
  }, wait);
}

function start(pair) {
  session = {
    access: pair.accessToken,
    refresh: pair.refreshToken,
    expiresAt: Date.now() + pair.expiresIn * 1000,
    timer: null,
  };
  schedule(pair.expiresIn);
}

function end(notify) {
  if (session && session.timer) clearTimeout(session.timer);
  session = null;
  if (socket) {
    socket.dispose();
    socket = null;
  }
  if (notify) endedListeners.forEach((fn) => fn());
}

const PAIR = 'accessToken refreshToken expiresIn';

export async function login(username, password) {
  const data = await post(
    `mutation($u: String!, $p: String!) { login(username: $u, password: $p) { ${PAIR} } }`,
    { u: username, p: password },
  );
  start(data.login);
}

let refreshing = null;

/** Trades the refresh token for a new pair; one at a time. */
async function refresh() {
  if (!session) throw new ApiError('UNAUTHENTICATED', 'no session');
  if (!refreshing) {
    const token = session.refresh;
    refreshing = post(
      `mutation($r: String!) { refreshToken(refreshToken: $r) { ${PAIR} } }`,
      { r: token },
    )
      .then((data) => {
        if (session) {
          const timer = session.timer;
          start(data.refreshToken);
          if (timer) clearTimeout(timer);
        }
      })
      .catch((e) => {
        if (e.code === 'UNAUTHENTICATED') end(true);
        throw e;
      })
      .finally(() => {
        refreshing = null;
      });
  }
  return refreshing;
}

/** Ends the session on the server too; the console forgets it either way. */
export async function logout() {
  const s = session;
  if (!s) return;
  try {
    await post('mutation($r: String!) { logout(refreshToken: $r) }', { r: s.refresh }, s.access);
  } finally {
    end(false);
  }
}

/** Runs a query or mutation as the signed-in person. */
export async function gql(query, variables = {}) {
  if (!session) throw new ApiError('UNAUTHENTICATED', 'not signed in');
  try {
    return await post(query, variables, session.access);
  } catch (e) {
    if (e.code !== 'UNAUTHENTICATED' || !session) throw e;
    // The access token may have lapsed (a laptop asleep): refresh once.
    await refresh();
    return post(query, variables, session.access);
  }
}

function client() {
  if (!socket) {
    socket = createClient({
      url: new URL('/graphql/ws', window.location.href).href.replace(/^http/, 'ws'),
      lazy: true,
      // Read at each (re)connection, so a refreshed token is used.
      connectionParams: () => (session ? { Authorization: `Bearer ${session.access}` } : {}),
      retryAttempts: 1e9,
      shouldRetry: () => session !== null,
    });
  }
  return socket;
}

// Live subscriptions, kept so that they can be opened again. The server
// closes a socket whose token has expired (4401, which graphql-ws treats as
// final), so a long shift would lose its live updates at the first token
// expiry: instead every subscription is opened again on a new socket, with
// the refreshed token, and the views are told to catch up on what they
// missed in between.
const live = new Map();
let nextLive = 0;
let reopening = null;
const reopenedListeners = new Set();

/** Calls `fn` after the live subscriptions were opened again. */
export function onResubscribed(fn) {
  reopenedListeners.add(fn);
  return () => reopenedListeners.delete(fn);
}

function open(entry) {
  entry.off = client().subscribe(
    { query: entry.query, variables: entry.variables },
    {
      next: (r) => {
        if (r.data) entry.onData(r.data);
      },
      error: () => {
        entry.off = null;
        reopenSoon();
      },
      complete: () => {},
    },
  );
}

function reopenSoon() {
  if (reopening || !session) return;
  reopening = setTimeout(async () => {
    reopening = null;
    if (!session) return;
    if (session.expiresAt <= Date.now()) {
      try {
        await refresh();
      } catch (e) {
        if (session) reopenSoon();
        return;
      }
    }
    if (socket) {
      socket.dispose();
      socket = null;
    }
    for (const entry of live.values()) {
      if (entry.off) entry.off();
      open(entry);
    }
    reopenedListeners.forEach((fn) => fn());
  }, 1000);
}

/** Subscribes; `onData` gets each result's data. Returns the unsubscriber. */
export function subscribe(query, variables, onData) {
  const id = ++nextLive;
  const entry = { query, variables, onData, off: null };
  live.set(id, entry);
  open(entry);
  return () => {
    live.delete(id);
    if (entry.off) entry.off();
  };
}
