// The analysts' console: plain ES modules, Preact with htm, no build step.
// Everything it knows comes from the public GraphQL API (./api.js).
//
// Views live in the URL's query string (`?status=OPEN&assignee=mine`,
// `?alert=ID`, `?view=silences`) so a view can be shared and the browser's
// back button works; the server serves the same page for all of them.

import {
  html, render, useState, useEffect, useRef, useCallback,
} from '/assets/vendor/htm-3.1.1/standalone.module.js';
import * as api from './api.js';

const SEVERITIES = ['CRITICAL', 'HIGH', 'MEDIUM', 'LOW'];
const STATUSES = ['OPEN', 'ACKNOWLEDGED', 'RESOLVED'];
const PAGE = 25;
const ALERT_FIELDS = `id status severity occurrences lastSeenAt createdAt acknowledgedAt resolvedAt
  assignee { id username }
  event { id source eventType description dedupKey }`;

// ---------------------------------------------------------------- routing

function readRoute() {
  const p = new URLSearchParams(window.location.search);
  const out = {};
  for (const k of ['view', 'alert', 'severity', 'status', 'assignee', 'after', 'before']) {
    const v = p.get(k);
    if (v) out[k] = v;
  }
  if (out.severity && !SEVERITIES.includes(out.severity)) delete out.severity;
  if (out.status && !STATUSES.includes(out.status)) delete out.status;
  if (out.assignee && !['mine', 'unassigned'].includes(out.assignee)) delete out.assignee;
  return out;
}

function href(route) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(route)) if (v) p.set(k, v);
  const q = p.toString();
  return q ? `/?${q}` : '/';
}

// ---------------------------------------------------------------- helpers

function ago(iso) {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

function When({ iso }) {
  if (!iso) return '—';
  return html`<time datetime=${iso} title=${new Date(iso).toLocaleString()}>${ago(iso)}</time>`;
}

function Badge({ kind, value }) {
  return html`<span class=${`badge ${kind}-${value.toLowerCase()}`}>${value}</span>`;
}

function isTyping(el) {
  if (!el) return false;
  const t = el.tagName;
  if (t === 'TEXTAREA' || t === 'SELECT' || el.isContentEditable) return true;
  if (t !== 'INPUT') return false;
  return !['checkbox', 'radio', 'button', 'submit'].includes((el.type || '').toLowerCase());
}

const canChangeStatus = (me) => me.role === 'ADMIN';
const canSilence = (me) => me.role === 'ADMIN';
const canAssignOthers = (me) => me.role === 'ADMIN';

function matches(route, me, a) {
  if (route.severity && a.severity !== route.severity) return false;
  if (route.status && a.status !== route.status) return false;
  if (route.assignee === 'mine' && (!a.assignee || a.assignee.id !== me.id)) return false;
  if (route.assignee === 'unassigned' && a.assignee) return false;
  return true;
}

/** Runs `fn` at most once per `ms`, trailing. */
function useThrottled(fn, ms) {
  const timer = useRef(null);
  const latest = useRef(fn);
  latest.current = fn;
  return useCallback(() => {
    if (timer.current) return;
    timer.current = setTimeout(() => {
      timer.current = null;
      latest.current();
    }, ms);
  }, [ms]);
}

/** Makes `handler` the shell's key handler while this view is shown. */
function useKeys(keys, handler) {
  useEffect(() => {
    keys.current = handler;
    return () => {
      if (keys.current === handler) keys.current = null;
    };
  });
}

// ---------------------------------------------------------------- sign in

function SignIn({ notice, onSignedIn }) {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);

  async function submit(e) {
    e.preventDefault();
    setBusy(true);
    setError('');
    try {
      await api.login(username, password);
      const d = await api.gql('{ me { id username role } }');
      if (d.me.role !== 'ADMIN' && d.me.role !== 'ANALYST') {
        await api.logout();
        setError('The console is for administrators and analysts.');
        return;
      }
      onSignedIn(d.me);
    } catch (err) {
      setError(err.code === 'UNAUTHENTICATED' ? 'Wrong username or password.' : api.friendly(err));
    } finally {
      setBusy(false);
    }
  }

  return html`
    <main class="signin" id="main">
      <h1>threatwatch</h1>
      <form onSubmit=${submit} aria-labelledby="signin-title">
        <h2 id="signin-title">Sign in</h2>
        ${notice && html`<p role="status" class="notice">${notice}</p>`}
        <label for="username">Username</label>
        <input id="username" name="username" autocomplete="username" required
          value=${username} onInput=${(e) => setUsername(e.target.value)} />
        <label for="password">Password</label>
        <input id="password" name="password" type="password" autocomplete="current-password" required
          value=${password} onInput=${(e) => setPassword(e.target.value)} />
        ${error && html`<p role="alert" class="error">${error}</p>`}
        <button type="submit" disabled=${busy}>Sign in</button>
      </form>
    </main>`;
}

// ---------------------------------------------------------------- shell

function App() {
  const [me, setMe] = useState(null);
  const [notice, setNotice] = useState('');
  const [route, setRoute] = useState(readRoute);

  useEffect(() => {
    const onPop = () => setRoute(readRoute());
    window.addEventListener('popstate', onPop);
    return () => window.removeEventListener('popstate', onPop);
  }, []);

  useEffect(() => api.onSessionEnded(() => {
    setMe(null);
    setNotice('Your session has ended. Sign in again.');
  }), []);

  const navigate = useCallback((next, replace = false) => {
    const url = href(next);
    if (replace) window.history.replaceState(null, '', url);
    else window.history.pushState(null, '', url);
    setRoute(readRoute());
    if (!replace) window.scrollTo(0, 0);
  }, []);

  async function signOut() {
    try {
      await api.logout();
    } catch (e) {
      // Signed out here either way; the server's session lapses on its own.
    }
    setMe(null);
    setNotice('You are signed out.');
  }

  if (!me) {
    return html`<${SignIn} notice=${notice} onSignedIn=${(m) => { setNotice(''); setMe(m); }} />`;
  }
  return html`<${Shell} me=${me} route=${route} navigate=${navigate} signOut=${signOut} />`;
}

function Shell({ me, route, navigate, signOut }) {
  const [help, setHelp] = useState(false);
  const [flash, setFlash] = useState(null); // { kind: 'ok' | 'error', text }
  const keys = useRef(null); // the current view's key handler

  const say = useCallback((kind, text) => setFlash({ kind, text, at: Date.now() }), []);

  useEffect(() => {
    function onKey(e) {
      if (e.ctrlKey || e.metaKey || e.altKey) return;
      if (e.key === 'Escape' && help) {
        setHelp(false);
        return;
      }
      if (isTyping(e.target)) return;
      if (e.key === '?') {
        e.preventDefault();
        setHelp((h) => !h);
        return;
      }
      if (e.key === '/') {
        const f = document.getElementById('filter-severity');
        if (f) {
          e.preventDefault();
          f.focus();
        }
        return;
      }
      if (keys.current && keys.current(e)) e.preventDefault();
    }
    document.addEventListener('keydown', onKey);
    return () => document.removeEventListener('keydown', onKey);
  }, [help]);

  const link = (target) => (e) => {
    e.preventDefault();
    navigate(target);
  };

  let view;
  if (route.alert) {
    view = html`<${AlertPage} key=${route.alert} id=${route.alert} me=${me} navigate=${navigate} say=${say} keys=${keys} />`;
  } else if (route.view === 'silences') {
    view = html`<${Silences} me=${me} say=${say} keys=${keys} />`;
  } else {
    view = html`<${Queue} me=${me} route=${route} navigate=${navigate} say=${say} keys=${keys} />`;
  }

  return html`
    <a class="skip" href="#main">Skip to content</a>
    <header class="top">
      <span class="brand">threatwatch</span>
      <nav aria-label="Main">
        <a href="/" onClick=${link({})} aria-current=${!route.alert && route.view !== 'silences' ? 'page' : undefined}>Queue</a>
        <a href="/?view=silences" onClick=${link({ view: 'silences' })} aria-current=${route.view === 'silences' ? 'page' : undefined}>Silences</a>
      </nav>
      <span class="who">${me.username} <span class="role">(${me.role})</span></span>
      <button type="button" class="quiet" onClick=${() => setHelp(true)}>Keyboard shortcuts</button>
      <button type="button" onClick=${signOut}>Sign out</button>
    </header>
    ${flash && html`
      <div class=${`flash ${flash.kind}`} role=${flash.kind === 'error' ? 'alert' : 'status'} aria-labelledby="flash-text">
        <span id="flash-text">${flash.text}</span>
        <button type="button" class="quiet" aria-label="Dismiss message" onClick=${() => setFlash(null)}>×</button>
      </div>`}
    <main id="main" tabindex="-1">${view}</main>
    ${help && html`<${Help} close=${() => setHelp(false)} />`}`;
}

function Help({ close }) {
  const ref = useRef(null);
  useEffect(() => {
    const before = document.activeElement;
    if (ref.current) ref.current.focus();
    return () => before && before.focus && before.focus();
  }, []);
  return html`
    <div class="backdrop" onClick=${close}>
      <div role="dialog" aria-modal="true" aria-labelledby="help-title" class="dialog"
        tabindex="-1" ref=${ref} onClick=${(e) => e.stopPropagation()}>
        <h2 id="help-title">Keyboard shortcuts</h2>
        <dl class="keys">
          <dt><kbd>j</kbd> / <kbd>k</kbd></dt><dd>Next / previous alert</dd>
          <dt><kbd>Enter</kbd></dt><dd>Open the alert</dd>
          <dt><kbd>x</kbd></dt><dd>Select or unselect the alert</dd>
          <dt><kbd>a</kbd></dt><dd>Acknowledge the selected alerts (or the current one)</dd>
          <dt><kbd>r</kbd></dt><dd>Resolve the selected alerts (or the current one)</dd>
          <dt><kbd>/</kbd></dt><dd>Go to the filters</dd>
          <dt><kbd>?</kbd></dt><dd>Show or hide these keys</dd>
          <dt><kbd>Esc</kbd></dt><dd>Close this</dd>
        </dl>
        <button type="button" onClick=${close}>Close</button>
      </div>
    </div>`;
}

// ---------------------------------------------------------------- queue

function Counts({ stats, route, navigate }) {
  // The same shape while counting, so nothing below moves when they come.
  const by = stats ? Object.fromEntries(stats.byStatus.map((s) => [s.status, s.count])) : {};
  const n = (v) => (stats ? v || 0 : '…');
  return html`
    <ul class="counts" aria-label="Alerts by status" aria-busy=${stats ? undefined : 'true'}>
      ${STATUSES.map((s) => html`
        <li key=${s}>
          <a href=${href({ ...route, status: s, after: '', before: '' })}
            aria-current=${route.status === s ? 'true' : undefined}
            onClick=${(e) => { e.preventDefault(); navigate({ ...route, status: s, after: '', before: '' }); }}>
            <span class="n">${n(by[s])}</span> ${s.toLowerCase()}
          </a>
        </li>`)}
      <li><span class="n">${n(stats && stats.total)}</span> in all</li>
    </ul>`;
}

function Filters({ route, navigate }) {
  const set = (k) => (e) => navigate({ ...route, [k]: e.target.value, after: '', before: '' }, true);
  return html`
    <form class="filters" aria-label="Filters" onSubmit=${(e) => e.preventDefault()}>
      <label for="filter-severity">Severity</label>
      <select id="filter-severity" value=${route.severity || ''} onChange=${set('severity')}>
        <option value="">Any</option>
        ${SEVERITIES.map((s) => html`<option value=${s}>${s}</option>`)}
      </select>
      <label for="filter-status">Status</label>
      <select id="filter-status" value=${route.status || ''} onChange=${set('status')}>
        <option value="">Any</option>
        ${STATUSES.map((s) => html`<option value=${s}>${s}</option>`)}
      </select>
      <label for="filter-assignee">Assignee</label>
      <select id="filter-assignee" value=${route.assignee || ''} onChange=${set('assignee')}>
        <option value="">Anyone</option>
        <option value="mine">Mine</option>
        <option value="unassigned">Unassigned</option>
      </select>
    </form>`;
}

function Queue({ me, route, navigate, say, keys }) {
  const [page, setPage] = useState(null); // { nodes, pageInfo }
  const [stats, setStats] = useState(null);
  const [error, setError] = useState('');
  const [selected, setSelected] = useState(() => new Set());
  const [current, setCurrent] = useState(null); // the keyboard's alert id
  const [pending, setPending] = useState([]); // new alerts held back
  const [busy, setBusy] = useState(false);
  const [reloads, setReloads] = useState(0); // bumped when live updates may have been missed
  const firstPage = !route.after && !route.before;
  const live = useRef({});
  live.current = { route, me, firstPage };

  const loadStats = useCallback(async () => {
    try {
      const d = await api.gql('{ alertStats { total byStatus { status count } } }');
      setStats(d.alertStats);
    } catch (e) {
      // The counts are a convenience; the list reports its own errors.
    }
  }, []);
  const statsSoon = useThrottled(loadStats, 500);

  useEffect(() => {
    let stale = false;
    const vars = {
      severity: route.severity || null,
      status: route.status || null,
      assignee: route.assignee === 'mine' ? me.id : null,
      unassigned: route.assignee === 'unassigned' ? true : null,
    };
    if (route.before) Object.assign(vars, { last: PAGE, before: route.before });
    else Object.assign(vars, { first: PAGE, after: route.after || null });
    setError('');
    api.gql(`query($severity: Severity, $status: AlertStatus, $assignee: ID, $unassigned: Boolean,
        $first: Int, $after: String, $last: Int, $before: String) {
      alerts(severity: $severity, status: $status, assignee: $assignee, unassigned: $unassigned,
          first: $first, after: $after, last: $last, before: $before) {
        nodes { ${ALERT_FIELDS} }
        pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
      } }`, vars)
      .then((d) => {
        if (stale) return;
        setPage(d.alerts);
        setPending([]);
      })
      .catch((e) => !stale && setError(api.friendly(e)));
    return () => { stale = true; };
  }, [route.severity, route.status, route.assignee, route.after, route.before, me.id, reloads]);

  useEffect(() => { loadStats(); }, [loadStats, reloads]);
  useEffect(() => api.onResubscribed(() => setReloads((n) => n + 1)), []);

  // Live: merge changes in place; new alerts go on top when the analyst is
  // at the top of the first page, else wait behind the banner. Selection,
  // the keyboard's place and scroll position are state of their own, so
  // nothing here disturbs them.
  useEffect(() => {
    const offCreated = api.subscribe(`subscription { alertCreated { ${ALERT_FIELDS} } }`, {}, (d) => {
      const a = d.alertCreated;
      statsSoon();
      const { route: r, me: m, firstPage: first } = live.current;
      if (!matches(r, m, a)) return;
      const atTop = window.scrollY < 40;
      if (first && atTop) {
        setPending((p) => {
          if (p.length) return [a, ...p.filter((x) => x.id !== a.id)];
          setPage((pg) => pg && ({ ...pg, nodes: [a, ...pg.nodes.filter((x) => x.id !== a.id)] }));
          return p;
        });
      } else {
        setPending((p) => [a, ...p.filter((x) => x.id !== a.id)]);
      }
    });
    const offUpdated = api.subscribe(`subscription { alertUpdated { ${ALERT_FIELDS} } }`, {}, (d) => {
      const a = d.alertUpdated;
      statsSoon();
      setPage((pg) => pg && ({ ...pg, nodes: pg.nodes.map((x) => (x.id === a.id ? a : x)) }));
      setPending((p) => p.map((x) => (x.id === a.id ? a : x)));
    });
    return () => { offCreated(); offUpdated(); };
  }, [statsSoon]);

  function showPending() {
    setPage((pg) => {
      const ids = new Set(pending.map((a) => a.id));
      return { ...pg, nodes: [...pending, ...pg.nodes.filter((x) => !ids.has(x.id))] };
    });
    setPending([]);
    if (!firstPage) navigate({ ...route, after: '', before: '' });
    window.scrollTo(0, 0);
  }

  function toggle(id) {
    const n = new Set(now.current.selected);
    if (n.has(id)) n.delete(id);
    else n.add(id);
    now.current.selected = n;
    setSelected(n);
  }

  async function bulk(status, ids) {
    if (!ids.length || busy) return;
    setBusy(true);
    try {
      const d = await api.gql(`mutation($ids: [ID!]!, $status: AlertStatus!) {
        updateAlertStatuses(ids: $ids, status: $status) { ${ALERT_FIELDS} } }`, { ids, status });
      const changed = new Map(d.updateAlertStatuses.map((a) => [a.id, a]));
      setPage((pg) => ({ ...pg, nodes: pg.nodes.map((x) => changed.get(x.id) || x) }));
      setSelected(new Set());
      const verb = status === 'RESOLVED' ? 'Resolved' : 'Acknowledged';
      say('ok', `${verb} ${ids.length} alert${ids.length === 1 ? '' : 's'}.`);
      loadStats();
    } catch (e) {
      say('error', `Nothing was changed: ${api.friendly(e)}`);
    } finally {
      setBusy(false);
    }
  }

  const nodes = page ? page.nodes : [];
  // Keys can come faster than renders: they read and move this, not the
  // state of the last render.
  const now = useRef({});
  now.current.nodes = nodes;
  if (now.current.rendered !== current) {
    now.current.current = current;
    now.current.rendered = current;
  }
  now.current.selected = selected;
  const targets = () => {
    const { selected: sel, current: cur } = now.current;
    return sel.size ? [...sel] : cur ? [cur] : [];
  };

  const onKey = (e) => {
    const { nodes: list, current: cur } = now.current;
    const i = list.findIndex((a) => a.id === cur);
    const focusRow = (id) => {
      now.current.current = id;
      setCurrent(id);
      const el = document.getElementById(`open-${id}`);
      if (el) el.focus();
    };
    switch (e.key) {
      case 'j':
        if (list.length) focusRow(list[Math.min(list.length - 1, i + 1)].id);
        return true;
      case 'k':
        if (list.length) focusRow(list[Math.max(0, i - 1)].id);
        return true;
      case 'x':
        if (now.current.current && canChangeStatus(me)) toggle(now.current.current);
        return true;
      case 'a':
        if (canChangeStatus(me)) bulk('ACKNOWLEDGED', targets());
        return true;
      case 'r':
        if (canChangeStatus(me)) bulk('RESOLVED', targets());
        return true;
      default:
        return false;
    }
  };
  useKeys(keys, onKey);

  const open = (a) => (e) => {
    e.preventDefault();
    navigate({ alert: a.id });
  };
  const checkable = canChangeStatus(me);

  return html`
    <h1>Alerts</h1>
    <${Counts} stats=${stats} route=${route} navigate=${navigate} />
    <${Filters} route=${route} navigate=${navigate} />
    ${pending.length > 0 && html`
      <button type="button" class="banner" onClick=${showPending}>
        ${pending.length} new alert${pending.length === 1 ? '' : 's'}
      </button>`}
    ${checkable && html`
      <div role="toolbar" aria-label="Bulk actions" class="bulk">
        <span>${selected.size} selected</span>
        <button type="button" disabled=${!selected.size || busy} onClick=${() => bulk('ACKNOWLEDGED', [...selected])}>Acknowledge selected</button>
        <button type="button" disabled=${!selected.size || busy} onClick=${() => bulk('RESOLVED', [...selected])}>Resolve selected</button>
        ${selected.size > 0 && html`<button type="button" class="quiet" onClick=${() => setSelected(new Set())}>Clear selection</button>`}
      </div>`}
    ${error && html`<p role="alert" class="error">${error}</p>`}
    ${!page && !error && html`<p aria-busy="true">Loading alerts…</p>`}
    ${page && html`
      <div class="scroll">
      <table class="queue">
        <caption class="visually-hidden">Alerts, newest first</caption>
        <thead><tr>
          ${checkable && html`<th scope="col"><span class="visually-hidden">Selected</span></th>`}
          <th scope="col">Severity</th><th scope="col">Status</th><th scope="col">Source</th>
          <th scope="col" class="wide">Event type</th><th scope="col">Description</th>
          <th scope="col" class="wide">Occurrences</th><th scope="col">Last seen</th><th scope="col" class="wide">Assignee</th>
        </tr></thead>
        <tbody>
          ${nodes.length === 0 && html`<tr><td colspan="9">No alerts match these filters.</td></tr>`}
          ${nodes.map((a) => html`
            <tr key=${a.id} class=${a.id === current ? 'current' : ''} aria-current=${a.id === current ? 'true' : undefined}>
              ${checkable && html`<td><input type="checkbox" checked=${selected.has(a.id)}
                aria-label=${`Select ${a.event.source} ${a.event.eventType} alert`}
                onChange=${() => toggle(a.id)} /></td>`}
              <td><${Badge} kind="sev" value=${a.severity} /></td>
              <td><${Badge} kind="status" value=${a.status} /></td>
              <td>${a.event.source}</td>
              <td class="wide">${a.event.eventType}</td>
              <td><a id=${`open-${a.id}`} href=${href({ alert: a.id })} onClick=${open(a)}
                onFocus=${() => setCurrent(a.id)}>${a.event.description || '(no description)'}</a></td>
              <td class="wide">${a.occurrences}</td>
              <td><${When} iso=${a.lastSeenAt} /></td>
              <td class="wide">${a.assignee ? a.assignee.username : '—'}</td>
            </tr>`)}
        </tbody>
      </table>
      </div>
      <nav class="pager" aria-label="Pages">
        <button type="button" disabled=${!(page.pageInfo.hasPreviousPage || route.after)}
          onClick=${() => navigate({ ...route, after: '', before: page.pageInfo.startCursor })}>Newer</button>
        <button type="button" disabled=${!(page.pageInfo.hasNextPage || route.before)}
          onClick=${() => navigate({ ...route, before: '', after: page.pageInfo.endCursor })}>Older</button>
      </nav>`}`;
}

// ---------------------------------------------------------------- alert page

const DURATIONS = [
  ['1 hour', 3600], ['8 hours', 8 * 3600], ['24 hours', 86400], ['7 days', 7 * 86400], ['30 days', 30 * 86400],
];

function SilenceForm({ prefill, say, done }) {
  const [source, setSource] = useState(prefill.source || '');
  const [eventType, setEventType] = useState(prefill.eventType || '');
  const [dedupKey, setDedupKey] = useState(prefill.dedupKey || '');
  const [duration, setDuration] = useState(String(DURATIONS[0][1]));
  const [comment, setComment] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);

  async function submit(e) {
    e.preventDefault();
    if (!comment.trim()) {
      setError('Say why: the next analyst needs to know.');
      return;
    }
    setBusy(true);
    setError('');
    try {
      const input = {
        source: source || null,
        eventType: eventType || null,
        dedupKey: dedupKey || null,
        comment,
        endsAt: new Date(Date.now() + Number(duration) * 1000).toISOString(),
      };
      await api.gql('mutation($i: SilenceInput!) { createSilence(input: $i) { id } }', { i: input });
      say('ok', 'Silence created.');
      done();
    } catch (err) {
      setError(api.friendly(err));
    } finally {
      setBusy(false);
    }
  }

  return html`
    <form class="silence" onSubmit=${submit} aria-labelledby="silence-title">
      <h2 id="silence-title">New silence</h2>
      <label for="s-source">Source</label>
      <input id="s-source" value=${source} onInput=${(e) => setSource(e.target.value)} />
      <label for="s-type">Event type</label>
      <input id="s-type" value=${eventType} onInput=${(e) => setEventType(e.target.value)} />
      <label for="s-dedup">Dedup key</label>
      <input id="s-dedup" value=${dedupKey} onInput=${(e) => setDedupKey(e.target.value)} />
      <label for="s-duration">For</label>
      <select id="s-duration" value=${duration} onChange=${(e) => setDuration(e.target.value)}>
        ${DURATIONS.map(([label, s]) => html`<option value=${String(s)}>${label}</option>`)}
      </select>
      <label for="s-comment">Why (required)</label>
      <textarea id="s-comment" required value=${comment} onInput=${(e) => setComment(e.target.value)}></textarea>
      ${error && html`<p role="alert" class="error">${error}</p>`}
      <div class="row">
        <button type="submit" disabled=${busy}>Create silence</button>
        <button type="button" class="quiet" onClick=${done}>Cancel</button>
      </div>
    </form>`;
}

function AlertPage({ id, me, navigate, say, keys }) {
  const [alert, setAlert] = useState(null);
  const [error, setError] = useState('');
  const [events, setEvents] = useState(null);
  const [comments, setComments] = useState(null);
  const [draft, setDraft] = useState('');
  const [users, setUsers] = useState(null);
  const [assignTo, setAssignTo] = useState('');
  const [silencing, setSilencing] = useState(false);
  const [busy, setBusy] = useState(false);

  const load = useCallback(async () => {
    try {
      const d = await api.gql(`query($id: ID!) { alert(id: $id) {
          ${ALERT_FIELDS} updatedAt
          event { id source eventType severity description dedupKey externalId occurredAt timestamp }
          comments(first: 50) { nodes { id author body createdAt } pageInfo { hasNextPage endCursor } }
        } }`, { id });
      if (!d.alert) {
        setError('There is no such alert; it may have been removed.');
        return;
      }
      setAlert(d.alert);
      setComments(d.alert.comments);
    } catch (e) {
      setError(api.friendly(e));
    }
  }, [id]);

  const loadEvents = useCallback(async (after) => {
    try {
      const d = await api.gql(`query($id: ID!, $after: String) { alert(id: $id) {
          events(first: 20, after: $after) {
            nodes { id severity description occurredAt timestamp externalId }
            pageInfo { hasNextPage endCursor } totalCount } } }`, { id, after: after || null });
      if (!d.alert) return;
      setEvents((old) => (after && old
        ? { ...d.alert.events, nodes: [...old.nodes, ...d.alert.events.nodes] }
        : d.alert.events));
    } catch (e) {
      say('error', api.friendly(e));
    }
  }, [id, say]);

  useEffect(() => { load(); loadEvents(null); }, [load, loadEvents]);

  useEffect(() => {
    if (!canAssignOthers(me)) return;
    api.gql('{ users(first: 100) { nodes { id username role active } } }')
      .then((d) => setUsers(d.users.nodes.filter((u) => u.active && u.role !== 'SENSOR')))
      .catch(() => setUsers([]));
  }, [me]);

  // Another analyst's change shows at once; the draft comment is separate
  // state and stays as typed.
  useEffect(() => api.subscribe(`subscription { alertUpdated { id } }`, {}, (d) => {
    if (d.alertUpdated.id === id) {
      load();
      loadEvents(null);
    }
  }), [id, load, loadEvents]);

  useEffect(() => api.onResubscribed(() => { load(); loadEvents(null); }), [load, loadEvents]);

  async function act(what, query, vars, message) {
    if (busy) return;
    setBusy(true);
    try {
      await api.gql(query, vars);
      say('ok', message);
      await load();
    } catch (e) {
      say('error', `${what} failed: ${api.friendly(e)}`);
    } finally {
      setBusy(false);
    }
  }

  const setStatus = (status) => act(
    status === 'RESOLVED' ? 'Resolving' : 'Acknowledging',
    'mutation($id: ID!, $s: AlertStatus!) { updateAlertStatus(id: $id, status: $s) { id } }',
    { id, s: status },
    status === 'RESOLVED' ? 'Alert resolved.' : 'Alert acknowledged.',
  );
  const assign = (userId, message) => act(
    'Assigning',
    'mutation($id: ID!, $u: ID) { assignAlert(id: $id, assignee: $u) { id } }',
    { id, u: userId },
    message,
  );

  async function comment(e) {
    e.preventDefault();
    const body = draft.trim();
    if (!body) return;
    setBusy(true);
    try {
      const d = await api.gql('mutation($id: ID!, $b: String!) { commentOnAlert(id: $id, body: $b) { id author body createdAt } }',
        { id, b: body });
      setDraft('');
      setComments((c) => ({ ...c, nodes: [d.commentOnAlert, ...(c ? c.nodes.filter((x) => x.id !== d.commentOnAlert.id) : [])] }));
      say('ok', 'Comment added.');
    } catch (err) {
      say('error', `Your comment was not saved: ${api.friendly(err)}`);
    } finally {
      setBusy(false);
    }
  }

  const onKey = (e) => {
    if (!alert || !canChangeStatus(me)) return false;
    if (e.key === 'a' && alert.status === 'OPEN') { setStatus('ACKNOWLEDGED'); return true; }
    if (e.key === 'r' && alert.status !== 'RESOLVED') { setStatus('RESOLVED'); return true; }
    return false;
  };
  useKeys(keys, onKey);

  const back = html`<p><a href="/" onClick=${(e) => { e.preventDefault(); window.history.length > 1 ? window.history.back() : navigate({}); }}>← Back to the queue</a></p>`;
  if (error) return html`${back}<p role="alert" class="error">${error}</p>`;
  if (!alert) return html`${back}<p aria-busy="true">Loading the alert…</p>`;
  const ev = alert.event;
  const mine = alert.assignee && alert.assignee.id === me.id;

  return html`
    ${back}
    <h1>${ev.source}: ${ev.eventType}</h1>
    <p class="lede"><${Badge} kind="sev" value=${alert.severity} /> <${Badge} kind="status" value=${alert.status} /> ${ev.description}</p>
    <dl class="facts">
      <dt>Occurrences</dt><dd>${alert.occurrences}</dd>
      <dt>First seen</dt><dd><${When} iso=${alert.createdAt} /></dd>
      <dt>Last seen</dt><dd><${When} iso=${alert.lastSeenAt} /></dd>
      <dt>Assignee</dt><dd>${alert.assignee ? alert.assignee.username : 'nobody'}</dd>
      <dt>Dedup key</dt><dd>${ev.dedupKey || '—'}</dd>
      ${ev.externalId && html`<dt>Sensor's id</dt><dd>${ev.externalId}</dd>`}
    </dl>
    <div role="group" aria-label="Actions" class="actions">
      ${canChangeStatus(me) && alert.status === 'OPEN' && html`<button type="button" disabled=${busy} onClick=${() => setStatus('ACKNOWLEDGED')}>Acknowledge</button>`}
      ${canChangeStatus(me) && alert.status !== 'RESOLVED' && html`<button type="button" disabled=${busy} onClick=${() => setStatus('RESOLVED')}>Resolve</button>`}
      ${!mine && html`<button type="button" disabled=${busy} onClick=${() => assign(me.id, 'Assigned to you.')}>Assign to me</button>`}
      ${alert.assignee && (mine || canAssignOthers(me)) && html`<button type="button" class="quiet" disabled=${busy} onClick=${() => assign(null, 'Unassigned.')}>Unassign</button>`}
      ${canSilence(me) && !silencing && html`<button type="button" onClick=${() => setSilencing(true)}>Silence similar events</button>`}
    </div>
    ${canAssignOthers(me) && users && html`
      <form class="assign" onSubmit=${(e) => { e.preventDefault(); if (assignTo) assign(assignTo, 'Assigned.'); }}>
        <label for="assign-to">Assign to</label>
        <select id="assign-to" value=${assignTo} onChange=${(e) => setAssignTo(e.target.value)}>
          <option value="">Choose a person</option>
          ${users.map((u) => html`<option value=${u.id}>${u.username}</option>`)}
        </select>
        <button type="submit" disabled=${busy || !assignTo}>Assign</button>
      </form>`}
    ${silencing && html`<${SilenceForm} prefill=${ev} say=${say} done=${() => setSilencing(false)} />`}
    <section aria-labelledby="comments-title">
      <h2 id="comments-title">Comments</h2>
      <form onSubmit=${comment} class="comment">
        <label for="comment">Comment</label>
        <textarea id="comment" value=${draft} maxlength="10000" onInput=${(e) => setDraft(e.target.value)}></textarea>
        <button type="submit" disabled=${busy || !draft.trim()}>Add comment</button>
      </form>
      ${comments && comments.nodes.length === 0 && html`<p>No comments yet.</p>`}
      <ul class="comments" aria-label="Comments, newest first">
        ${comments && comments.nodes.map((c) => html`
          <li key=${c.id}><p class="meta"><strong>${c.author}</strong> <${When} iso=${c.createdAt} /></p><p class="body">${c.body}</p></li>`)}
      </ul>
    </section>
    <section aria-labelledby="events-title">
      <h2 id="events-title">Events${events ? ` (${events.totalCount})` : ''}</h2>
      ${events && html`
        <ul class="events" aria-label="Events, newest first">
          ${events.nodes.map((x) => html`<li key=${x.id}><${Badge} kind="sev" value=${x.severity} /> <${When} iso=${x.occurredAt} /> ${x.description}</li>`)}
        </ul>
        ${events.pageInfo.hasNextPage && html`<button type="button" onClick=${() => loadEvents(events.pageInfo.endCursor)}>More events</button>`}`}
    </section>`;
}

// ---------------------------------------------------------------- silences

function Silences({ me, say, keys }) {
  const [active, setActive] = useState(null);
  const [expired, setExpired] = useState(null);
  const [error, setError] = useState('');
  const [creating, setCreating] = useState(false);

  const load = useCallback(async () => {
    const fields = 'id source eventType severity dedupKey comment createdBy createdAt endsAt expiredAt';
    try {
      const d = await api.gql(`{ on: silences(active: true) { ${fields} } off: silences(active: false) { ${fields} } }`);
      setActive(d.on);
      setExpired(d.off);
    } catch (e) {
      setError(api.friendly(e));
    }
  }, []);
  useEffect(() => { load(); }, [load]);
  useKeys(keys, null);

  async function expire(s) {
    try {
      await api.gql('mutation($id: ID!) { expireSilence(id: $id) { id } }', { id: s.id });
      say('ok', 'Silence expired.');
      load();
    } catch (e) {
      say('error', `The silence was not expired: ${api.friendly(e)}`);
    }
  }

  const what = (s) => [s.source, s.eventType, s.severity, s.dedupKey].filter(Boolean).join(' · ') || 'everything';
  const table = (rows, label, withExpire) => html`
    <table class="silences" aria-label=${label}>
      <thead><tr><th scope="col">Matches</th><th scope="col">Why</th><th scope="col">By</th>
        <th scope="col">${withExpire ? 'Ends' : 'Ended'}</th>${withExpire && canSilence(me) && html`<th scope="col"><span class="visually-hidden">Actions</span></th>`}</tr></thead>
      <tbody>
        ${rows.length === 0 && html`<tr><td colspan="5">None.</td></tr>`}
        ${rows.map((s) => html`<tr key=${s.id}>
          <td>${what(s)}</td><td>${s.comment}</td><td>${s.createdBy}</td>
          <td><${When} iso=${s.expiredAt || s.endsAt} /></td>
          ${withExpire && canSilence(me) && html`<td><button type="button" aria-label=${`Expire silence for ${what(s)}`} onClick=${() => expire(s)}>Expire</button></td>`}
        </tr>`)}
      </tbody>
    </table>`;

  return html`
    <h1>Silences</h1>
    ${canSilence(me) && !creating && html`<button type="button" onClick=${() => setCreating(true)}>New silence</button>`}
    ${creating && html`<${SilenceForm} prefill=${{}} say=${say} done=${() => { setCreating(false); load(); }} />`}
    ${error && html`<p role="alert" class="error">${error}</p>`}
    <h2>Active</h2>
    ${active ? table(active, 'Active silences', true) : html`<p aria-busy="true">Loading…</p>`}
    <h2>Expired</h2>
    ${expired ? table(expired, 'Expired silences', false) : html`<p aria-busy="true">Loading…</p>`}`;
}

const root = document.getElementById('app');
root.textContent = '';
render(html`<${App} />`, root);
