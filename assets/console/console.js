// The admin console: one page, no build step. Preact renders it (every
// value from the API is text to Preact, so record names cannot become
// markup), htm writes the templates, Chart.js (loaded on the pipeline page
// only) draws the charts. It talks to the server only through its GraphQL
// endpoints, with the session cookie the sign-in set.
'use strict';
(() => {
  const { h, render } = preact;
  const { useState, useEffect, useRef, useCallback } = preactHooks;
  const html = htm.bind(h);

  // ---- Talking to the server -------------------------------------------

  const PRODUCTION = 'production';

  /** The GraphQL endpoint of a workspace: production or a sandbox. */
  const endpointOf = (workspace) =>
    workspace === PRODUCTION ? '/graphql' : `/sandboxes/${encodeURIComponent(workspace)}/graphql`;

  class ApiError extends Error {
    constructor(message, code, path) {
      super(message);
      this.code = code;
      this.path = path;
    }
  }

  let onSignedOut = () => {};

  /** Runs a GraphQL operation against a workspace; its data, or ApiError. */
  async function gql(workspace, query, variables = {}) {
    let response;
    try {
      response = await fetch(endpointOf(workspace), {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify({ query, variables }),
      });
    } catch (err) {
      throw new ApiError(`The server could not be reached (${err.message}).`, 'UNAVAILABLE');
    }
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      throw new ApiError(`The server answered ${response.status} without a GraphQL body.`, 'UNAVAILABLE');
    }
    const first = body.errors && body.errors[0];
    if (response.status === 401) {
      onSignedOut();
      throw new ApiError(first ? first.message : 'Sign in again.', 'UNAUTHENTICATED');
    }
    if (first) {
      const ext = first.extensions || {};
      const path = ext.field || ext.path || first.path;
      throw new ApiError(first.message, ext.code || 'ERROR', path);
    }
    return body.data;
  }

  /** Loads something when `deps` change; `[data, error, reload]`. */
  function useQuery(load, deps) {
    const [state, setState] = useState({ data: null, error: null });
    const [tick, setTick] = useState(0);
    const inputs = useRef(null);
    useEffect(() => {
      let live = true;
      // New inputs show nothing of the old answer; a reload keeps it shown.
      const key = JSON.stringify(deps);
      const same = inputs.current === key;
      inputs.current = key;
      setState((s) => ({ data: same ? s.data : null, error: null }));
      load().then(
        (data) => live && setState({ data, error: null }),
        (error) => live && setState({ data: null, error }),
      );
      return () => {
        live = false;
      };
    }, [...deps, tick]);
    return [state.data, state.error, useCallback(() => setTick((t) => t + 1), [])];
  }

  /** A mutation's running state: `[run, busy, error, setError]`. */
  function useAction() {
    const [busy, setBusy] = useState(false);
    const [error, setError] = useState(null);
    const run = async (work) => {
      setBusy(true);
      setError(null);
      try {
        return await work();
      } catch (err) {
        setError(err);
        return undefined;
      } finally {
        setBusy(false);
      }
    };
    return [run, busy, error, setError];
  }

  // ---- Small pieces --------------------------------------------------------

  const fmtTime = (at) => (at ? new Date(at).toLocaleString() : '—');
  const fmtBytes = (n) => {
    if (n == null) return '—';
    const units = ['B', 'kB', 'MB', 'GB', 'TB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) {
      n /= 1024;
      i += 1;
    }
    return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
  };
  const fmtNumber = (n, digits = 0) =>
    n == null || n === '' ? '—' : Number(n).toLocaleString(undefined, { maximumFractionDigits: digits });
  const fmtPercent = (n) => (n == null ? '—' : `${(Number(n) * 100).toFixed(1)} %`);
  const showValue = (v) => (v === undefined || v === null ? '—' : typeof v === 'string' ? v : JSON.stringify(v));
  const plural = (n, one, many) => `${n} ${n === 1 ? one : many || one + 's'}`;

  const Badge = ({ value, label }) =>
    value ? html`<span class=${'badge ' + value}>${label || value.replace(/_/g, ' ')}</span>` : null;

  function ErrorBox({ error }) {
    if (!error) return null;
    const where = Array.isArray(error.path) && error.path.length ? ` (at ${error.path.join('.')})` : '';
    return html`<div class="alert" role="alert"><b>${error.code || 'Error'}</b>: ${error.message}${where}</div>`;
  }

  const Loading = ({ what }) => html`<p class="hint" role="status">Loading ${what}…</p>`;

  /** A button that asks "are you sure" in place before it acts. */
  function ConfirmButton({ label, confirm, onConfirm, disabled, danger }) {
    const [asking, setAsking] = useState(false);
    const yes = useRef(null);
    const button = useRef(null);
    const wasAsking = useRef(false);
    // The keyboard follows the question: to "Yes" when it opens, back to
    // the button when it closes.
    useEffect(() => {
      if (asking && yes.current) yes.current.focus();
      if (!asking && wasAsking.current && button.current) button.current.focus();
      wasAsking.current = asking;
    }, [asking]);
    if (!asking) {
      return html`<button type="button" ref=${button} disabled=${disabled} onClick=${() => setAsking(true)}>${label}</button>`;
    }
    return html`<span class="actions" role="group" aria-label=${label}>
      <span>${confirm}</span>
      <button type="button" ref=${yes} class=${danger ? 'danger' : 'primary'} onClick=${() => {
        setAsking(false);
        onConfirm();
      }}>Yes, ${label.toLowerCase()}</button>
      <button type="button" onClick=${() => setAsking(false)}>Cancel</button>
    </span>`;
  }

  // ---- Routing ---------------------------------------------------------------

  /** The page the hash names: `#/sandboxes/qa` → ['sandboxes', 'qa']. */
  const route = () =>
    location.hash
      .replace(/^#\/?/, '')
      .split('/')
      .filter(Boolean)
      .map(decodeURIComponent);
  const link = (...parts) => '#/' + parts.map(encodeURIComponent).join('/');

  function useRoute() {
    const [parts, setParts] = useState(route());
    useEffect(() => {
      const changed = () => setParts(route());
      addEventListener('hashchange', changed);
      return () => removeEventListener('hashchange', changed);
    }, []);
    return parts;
  }

  // ---- Sign-in ------------------------------------------------------------------

  function SignIn({ onSignedIn }) {
    const [token, setToken] = useState('');
    const [run, busy, error] = useAction();
    const submit = (event) => {
      event.preventDefault();
      run(async () => {
        const response = await fetch('/console/session', {
          method: 'POST',
          credentials: 'same-origin',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ token }),
        });
        const body = await response.json().catch(() => ({}));
        if (!response.ok) {
          const first = (body.errors && body.errors[0]) || {};
          throw new ApiError(first.message || `refused (${response.status})`, (first.extensions || {}).code);
        }
        setToken('');
        onSignedIn();
      });
    };
    return html`<main id="main" class="signin">
      <h1>Sign in to the CRM console</h1>
      <p class="hint">Paste an API token once: the server trades it for a session cookie this page
        cannot read, which ends after 12 hours, when you sign out, or when the token is revoked.${' '}
        <code>serve</code> prints the first admin token; <code>crm token create</code> makes more.</p>
      <form onSubmit=${submit}>
        <p><label for="token">API token</label><br />
          <input id="token" type="password" autocomplete="off" required value=${token}
            onInput=${(e) => setToken(e.target.value)} /></p>
        <${ErrorBox} error=${error} />
        <button type="submit" class="primary" disabled=${busy || !token.trim()}>Sign in</button>
      </form>
    </main>`;
  }

  // ---- The frame -------------------------------------------------------------------

  const PAGES = [
    { id: 'sandboxes', label: 'Sandboxes', admin: true },
    { id: 'history', label: 'History', admin: true },
    { id: 'pipeline', label: 'Pipeline' },
    { id: 'imports', label: 'Imports' },
    { id: 'automation', label: 'Automation' },
  ];

  function App() {
    const [me, setMe] = useState(undefined);
    const [workspaces, setWorkspaces] = useState([PRODUCTION]);
    const [workspace, setWorkspace] = useState(PRODUCTION);
    const parts = useRoute();

    const signedOut = () => {
      setMe(null);
      setWorkspace(PRODUCTION);
      setWorkspaces([PRODUCTION]);
    };
    const loadMe = useCallback(() => {
      gql(PRODUCTION, '{ me { role tokenId user { id name email } } }').then(
        async (data) => {
          setMe(data.me);
          if (data.me.role === 'ADMIN') {
            const list = await gql(PRODUCTION, '{ sandboxes { name } }').catch(() => ({ sandboxes: [] }));
            setWorkspaces([PRODUCTION, ...list.sandboxes.map((s) => s.name)]);
          }
        },
        () => signedOut(),
      );
    }, []);
    useEffect(() => {
      onSignedOut = signedOut;
      loadMe();
    }, []);

    if (me === undefined) return html`<p class="loading" role="status">Loading the console…</p>`;
    if (me === null) return html`<${SignIn} onSignedIn=${loadMe} />`;

    const admin = me.role === 'ADMIN';
    const pages = PAGES.filter((p) => admin || !p.admin);
    const page = parts[0] || pages[0].id;
    const signOut = async () => {
      await fetch('/console/session', { method: 'DELETE', credentials: 'same-origin' });
      signedOut();
    };
    return html`
      <a class="skip" href="#main" onClick=${(e) => {
        e.preventDefault();
        document.getElementById('main').focus();
      }}>Skip to content</a>
      <header class="top">
        <a class="brand" href=${link(pages[0].id)}>CRM console</a>
        <nav aria-label="Console"><ul>
          ${pages.map(
            (p) => html`<li><a href=${link(p.id)} aria-current=${page === p.id ? 'page' : undefined}>${p.label}</a></li>`,
          )}
        </ul></nav>
        <div class="who">
          <label for="workspace">Workspace</label>
          <select id="workspace" value=${workspace} onChange=${(e) => setWorkspace(e.target.value)}>
            ${workspaces.map((w) => html`<option value=${w}>${w === PRODUCTION ? 'production' : 'sandbox ' + w}</option>`)}
          </select>
          <span>${me.user.name} (${me.role})</span>
          <button type="button" onClick=${signOut}>Sign out</button>
        </div>
      </header>
      <main id="main" tabindex="-1">
        ${PAGES.some((p) => p.id === page && p.admin && !admin)
          ? html`<h1>Admins only</h1><p>Your role (${me.role}) cannot manage sandboxes or promotions.</p>`
          : pageFor(page, parts.slice(1), { me, workspace, refreshWorkspaces: loadMe })}
      </main>`;
  }

  function pageFor(page, rest, ctx) {
    switch (page) {
      case 'sandboxes':
        return rest.length ? html`<${Review} key=${rest[0]} name=${rest[0]} />` : html`<${Sandboxes} onChange=${ctx.refreshWorkspaces} />`;
      case 'history':
        return html`<${History} />`;
      case 'pipeline':
        return html`<${Pipeline} workspace=${ctx.workspace} />`;
      case 'imports':
        return html`<${Imports} workspace=${ctx.workspace} />`;
      case 'automation':
        return html`<${Automation} workspace=${ctx.workspace} admin=${ctx.me.role === 'ADMIN'} />`;
      case 'records':
        return html`<${RecordPage} workspace=${rest[0]} object=${rest[1]} id=${rest[2]} />`;
      default:
        return html`<h1>Not found</h1><p>There is no page <code>${page}</code>.</p>`;
    }
  }

  // ---- Sandboxes ---------------------------------------------------------------------

  const SANDBOX_FIELDS = `name description mode sampleSize masked status baseVersion productionVersion
    createdAt refreshedAt endpoint size { rows bytes } grantedUsers { id name email }`;

  function Sandboxes({ onChange }) {
    const [data, error, reload] = useQuery(() => gql(PRODUCTION, `{ sandboxes { ${SANDBOX_FIELDS} } }`), []);
    const [run, busy, actionError] = useAction();
    const [progress, setProgress] = useState(null);
    const [notice, setNotice] = useState(null);
    const changed = () => {
      reload();
      onChange();
    };

    /** Runs a mutation that makes a sandbox, polling its progress. */
    const making = (name, verb, mutation, variables) =>
      run(async () => {
        setNotice(null);
        setProgress({ name, verb, step: 'starting', rowsCopied: 0, rowsEstimated: 0 });
        let done = false;
        let timer = null;
        // One poll at a time, and none once the mutation has answered.
        const poll = async () => {
          const p = await gql(PRODUCTION, 'query($n: String!) { sandboxProgress(name: $n) { step rowsCopied rowsEstimated } }', {
            n: name,
          }).catch(() => null);
          if (done) return;
          if (p && p.sandboxProgress) setProgress({ name, verb, ...p.sandboxProgress });
          timer = setTimeout(poll, 250);
        };
        timer = setTimeout(poll, 250);
        try {
          await gql(PRODUCTION, mutation, variables);
          setNotice(`Sandbox ${name} ${verb === 'Creating' ? 'created' : 'refreshed'}.`);
          changed();
        } finally {
          done = true;
          clearTimeout(timer);
          setProgress(null);
        }
      });

    const remove = (name) =>
      run(async () => {
        await gql(PRODUCTION, 'mutation($n: String!) { deleteSandbox(name: $n) { name } }', { n: name });
        setNotice(`Sandbox ${name} deleted.`);
        changed();
      });

    return html`
      <h1>Sandboxes</h1>
      <p class="hint">Each sandbox is a copy of production's schema with its own endpoint: build and test
        customizations there, review them here, and promote them (reversibly) to production.</p>
      <${CreateSandbox} busy=${busy} onCreate=${(input) =>
        making(input.name, 'Creating', 'mutation($i: CreateSandboxInput!) { createSandbox(input: $i) { name } }', { i: input })} />
      ${progress &&
      html`<div class="panel muted" role="status" aria-live="polite">
        ${progress.verb} sandbox <b>${progress.name}</b>: ${progress.step}
        ${progress.rowsEstimated > 0
          ? html` — ${fmtNumber(progress.rowsCopied)} of about ${fmtNumber(progress.rowsEstimated)} rows${' '}
              <progress max=${progress.rowsEstimated} value=${Math.min(progress.rowsCopied, progress.rowsEstimated)}
                aria-label="Rows copied"></progress>`
          : html` <progress aria-label="Working"></progress>`}
      </div>`}
      ${notice && html`<div class="notice" role="status">${notice}</div>`}
      <${ErrorBox} error=${error || actionError} />
      ${!data
        ? !error && html`<${Loading} what="sandboxes" />`
        : data.sandboxes.length === 0
          ? html`<p>No sandboxes yet: create one above.</p>`
          : html`<table>
              <caption class="hint" style="text-align:left">${plural(data.sandboxes.length, 'sandbox', 'sandboxes')}</caption>
              <thead><tr><th scope="col">Name</th><th scope="col">Mode</th><th scope="col">Masked</th>
                <th scope="col" class="num">Base version</th><th scope="col">Status</th><th scope="col" class="num">Size</th>
                <th scope="col">Created</th><th scope="col">Actions</th></tr></thead>
              <tbody>${data.sandboxes.map(
                (s) => html`<${SandboxRow} key=${s.name} sandbox=${s} busy=${busy}
                  onRefresh=${() => making(s.name, 'Refreshing', 'mutation($n: String!) { refreshSandbox(name: $n) { name } }', { n: s.name })}
                  onDelete=${() => remove(s.name)} onGrantsChanged=${reload} />`,
              )}</tbody>
            </table>`}`;
  }

  function CreateSandbox({ busy, onCreate }) {
    const [form, setForm] = useState({ name: '', description: '', mode: 'METADATA_ONLY', sampleSize: '1000', mask: false });
    const set = (key) => (e) => setForm({ ...form, [key]: e.target.type === 'checkbox' ? e.target.checked : e.target.value });
    const submit = (e) => {
      e.preventDefault();
      const input = { name: form.name.trim(), description: form.description, mode: form.mode, mask: form.mask };
      if (form.mode === 'SAMPLE') input.sampleSize = parseInt(form.sampleSize, 10) || null;
      onCreate(input);
    };
    return html`<section class="panel" aria-labelledby="create-sandbox">
      <h2 id="create-sandbox" style="margin-top:0">Create a sandbox</h2>
      <form class="inline" onSubmit=${submit}>
        <div class="field"><label for="sb-name">Name</label>
          <input id="sb-name" required pattern="[a-z0-9_]{1,40}" title="1 to 40 lowercase letters, digits and underscores"
            value=${form.name} onInput=${set('name')} /></div>
        <div class="field"><label for="sb-description">Description</label>
          <input id="sb-description" value=${form.description} onInput=${set('description')} /></div>
        <div class="field"><label for="sb-mode">Mode</label>
          <select id="sb-mode" value=${form.mode} onChange=${set('mode')}>
            <option value="METADATA_ONLY">Metadata only</option>
            <option value="SAMPLE">Sample of records</option>
            <option value="FULL">Full copy</option>
          </select></div>
        ${form.mode === 'SAMPLE' &&
        html`<div class="field"><label for="sb-sample">Records per object</label>
          <input id="sb-sample" type="number" min="1" max="100000" value=${form.sampleSize} onInput=${set('sampleSize')} /></div>`}
        <label class="check"><input type="checkbox" checked=${form.mask} onChange=${set('mask')} /> Mask personal data</label>
        <button type="submit" class="primary" disabled=${busy}>Create sandbox</button>
      </form>
    </section>`;
  }

  function SandboxRow({ sandbox: s, busy, onRefresh, onDelete, onGrantsChanged }) {
    const [grants, setGrants] = useState(false);
    return html`<tr>
      <th scope="row"><a href=${link('sandboxes', s.name)}>${s.name}</a>
        ${s.description && html`<div class="hint">${s.description}</div>`}</th>
      <td>${s.mode.replace('_', ' ').toLowerCase()}${s.mode === 'SAMPLE' ? ` (${s.sampleSize})` : ''}</td>
      <td>${s.masked ? 'yes' : 'no'}</td>
      <td class="num">${s.baseVersion}${s.productionVersion !== s.baseVersion ? ` (production ${s.productionVersion})` : ''}</td>
      <td><${Badge} value=${s.status} /></td>
      <td class="num">${fmtNumber(s.size.rows)} rows<br />${fmtBytes(s.size.bytes)}</td>
      <td>${fmtTime(s.createdAt)}</td>
      <td>
        <div class="actions">
          <a class="button primary" href=${link('sandboxes', s.name)}>Review</a>
          <a class="button" href=${endpointOf(s.name)} target="_blank" rel="noopener">Playground</a>
          <${ConfirmButton} label="Refresh" confirm="Start over from production? Its changes are lost." disabled=${busy}
            onConfirm=${onRefresh} danger />
          <${ConfirmButton} label="Delete" confirm=${`Delete ${s.name} and everything in it?`} disabled=${busy}
            onConfirm=${onDelete} danger />
          <button type="button" aria-expanded=${grants} onClick=${() => setGrants(!grants)}>
            Access (${s.grantedUsers.length})</button>
        </div>
        ${grants && html`<${Grants} sandbox=${s} onChanged=${onGrantsChanged} />`}
      </td>
    </tr>`;
  }

  function Grants({ sandbox, onChanged }) {
    const [users] = useQuery(() => gql(PRODUCTION, '{ users(first: 500, orderBy: [{ field: NAME }]) { nodes { id name email role } } }'), []);
    const [userId, setUserId] = useState('');
    const [run, busy, error] = useAction();
    const granted = new Set(sandbox.grantedUsers.map((u) => u.id));
    const change = (mutation, id) =>
      run(async () => {
        await gql(PRODUCTION, `mutation($n: String!, $u: ID!) { ${mutation}(name: $n, userId: $u) { name } }`, { n: sandbox.name, u: id });
        onChanged();
      });
    return html`<div class="panel muted">
      <p class="hint">Admins use every sandbox; others only those they are granted.</p>
      <ul>${sandbox.grantedUsers.map(
        (u) => html`<li>${u.name} (${u.email})${' '}
          <button type="button" disabled=${busy} onClick=${() => change('revokeSandboxAccess', u.id)}
            aria-label=${`Revoke ${u.name}'s access`}>Revoke</button></li>`,
      )}</ul>
      <label for=${'grant-' + sandbox.name}>Grant access to</label>${' '}
      <select id=${'grant-' + sandbox.name} value=${userId} onChange=${(e) => setUserId(e.target.value)}>
        <option value="">Choose a user…</option>
        ${(users ? users.users.nodes : [])
          .filter((u) => u.role !== 'ADMIN' && !granted.has(u.id))
          .map((u) => html`<option value=${u.id}>${u.name} (${u.email})</option>`)}
      </select>${' '}
      <button type="button" disabled=${busy || !userId} onClick=${() => change('grantSandboxAccess', userId)}>Grant</button>
      <${ErrorBox} error=${error} />
    </div>`;
  }

  // ---- Review a sandbox like a pull request ------------------------------------------

  const CHANGE_FIELDS = `key kind action target summary before after status conflict resolution apiImpact
    properties { name before after target }
    sdlChanges { level path message } clientImpacts { level path message }
    dataImpact { message path count sampleIds lossy }`;
  const REPORT_FIELDS = `source dryRun applied baseVersion versionBefore versionAfter conflicts failures breaking lossy
    blockers canApply rebased apiImpact promotion { id }
    sdlChanges { level path message }
    changes { ${CHANGE_FIELDS} } targetChanges { ${CHANGE_FIELDS} }`;

  const KIND_GROUPS = {
    PIPELINE: 'Pipelines', STAGE: 'Pipelines', SETTINGS: 'Workspace settings', REPORT: 'Reports',
    LEAD_FIELD_MAPPING: 'Lead conversion', SCORING_RULE: 'Lead scoring', LEAD_GRADE: 'Lead scoring',
  };

  /** The object a change is about, to group the review by. */
  function objectOf(change) {
    if (change.kind === 'OBJECT') return change.target;
    if (change.kind === 'FIELD') return change.target.split('.')[0];
    const item = change.after || change.before || {};
    if (item && typeof item === 'object' && typeof item.object === 'string') return item.object;
    return KIND_GROUPS[change.kind] || change.kind.replace(/_/g, ' ').toLowerCase();
  }

  function groupBy(list, key) {
    const groups = new Map();
    for (const item of list) {
      const k = key(item);
      if (!groups.has(k)) groups.set(k, []);
      groups.get(k).push(item);
    }
    return [...groups.entries()].sort((a, b) => a[0].localeCompare(b[0]));
  }

  const MARKS = { BREAKING: '!', DANGEROUS: '~', SAFE: '+' };

  const SdlLines = ({ lines, label }) =>
    lines && lines.length
      ? html`<ul class="sdl" aria-label=${label}>${lines.map(
          (l) => html`<li class=${l.level}><span class="mark" aria-hidden="true">${MARKS[l.level] || ' '}</span>
            <${Badge} value=${l.level} /> <code>${l.path}</code> <span>${l.message}</span></li>`,
        )}</ul>`
      : null;

  function Change({ change: c, production, resolution, onResolve }) {
    const object = objectOf(c);
    const recordObject = c.kind === 'FIELD' || c.kind === 'OBJECT' ? object : null;
    // A new item lists only what it sets.
    const empty = (v) => v === null || v === undefined || v === '' || v === false || (Array.isArray(v) && !v.length);
    const properties = c.action === 'ADD' ? c.properties.filter((p) => !empty(p.after)) : c.properties;
    return html`<article class=${'change ' + c.apiImpact} aria-label=${`${c.kind} ${c.target}`}>
      <h4><${Badge} value=${c.apiImpact} /> <span class="badge neutral">${c.action}</span>
        <span>${c.kind.replace(/_/g, ' ').toLowerCase()}</span> <code>${c.target}</code>
        <${Badge} value=${c.status} /></h4>
      <p style="margin:0.2rem 0">${c.summary}</p>
      ${properties.length > 0 &&
      html`<table aria-label=${`Properties of ${c.target}`}>
        <thead><tr><th scope="col">Property</th><th scope="col">Before (base)</th><th scope="col">Sandbox</th>
          ${c.conflict && html`<th scope="col">Production now</th>`}</tr></thead>
        <tbody>${properties.map(
          (p) => html`<tr><th scope="row">${p.name}</th><td class="value">${showValue(p.before)}</td>
            <td class="value">${showValue(p.after)}</td>${c.conflict && html`<td class="value">${showValue(p.target)}</td>`}</tr>`,
        )}</tbody></table>`}
      <${SdlLines} lines=${c.sdlChanges} label=${`SDL lines ${c.target} changes`} />
      ${c.clientImpacts.length > 0 &&
      html`<details><summary>What breaks for existing clients (${c.clientImpacts.length})</summary>
        <${SdlLines} lines=${c.clientImpacts} label=${`Client impact of ${c.target}`} /></details>`}
      ${c.dataImpact &&
      html`<div class="impact" role="note" aria-label=${`Data impact of ${c.target}`}>
        <b>Data impact${c.dataImpact.count != null ? `: ${plural(c.dataImpact.count, 'record')}` : ''}</b>
        ${c.dataImpact.lossy ? ' (lossy: needs your confirmation; a revert brings the values back)' : ''}
        <div>${c.dataImpact.message}</div>
        ${c.dataImpact.sampleIds.length > 0 &&
        html`<div>Samples in production: ${c.dataImpact.sampleIds.map(
          (id, i) => html`${i ? ', ' : ''}${recordObject
            ? html`<a href=${link('records', PRODUCTION, recordObject, id)}>${id.slice(0, 8)}</a>`
            : html`<code>${id.slice(0, 8)}</code>`}`,
        )}</div>`}
      </div>`}
      ${c.conflict &&
      html`<div class="conflict">
        <b>Conflict:</b> ${c.conflict}
        ${production && html`<div class="grid2" style="margin-top:0.4rem">
          <div><h5 style="margin:0">Sandbox's version</h5><pre class="json">${JSON.stringify(c.after, null, 2)}</pre></div>
          <div><h5 style="margin:0">Production's version</h5><pre class="json">${JSON.stringify(production.after, null, 2)}</pre></div>
        </div>`}
        <fieldset>
          <legend>Resolve ${c.target}</legend>
          <label class="check"><input type="radio" name=${'resolve-' + c.key} checked=${resolution === 'SOURCE'}
            onChange=${() => onResolve(c.key, 'SOURCE')} /> Take the sandbox's</label>
          <label class="check"><input type="radio" name=${'resolve-' + c.key} checked=${resolution === 'TARGET'}
            onChange=${() => onResolve(c.key, 'TARGET')} /> Keep production's</label>
        </fieldset>
      </div>`}
    </article>`;
  }

  function Review({ name }) {
    const [data, error, reload] = useQuery(
      () => gql(PRODUCTION, `query($n: String!) { sandbox(name: $n) { ${SANDBOX_FIELDS} } sandboxDiff(name: $n) { ${REPORT_FIELDS} } }`, { n: name }),
      [name],
    );
    const [resolutions, setResolutions] = useState({});
    const [allowBreaking, setAllowBreaking] = useState(false);
    const [allowLossy, setAllowLossy] = useState(false);
    const [dryRun, setDryRun] = useState(null);
    const [promoted, setPromoted] = useState(null);
    const [run, busy, actionError] = useAction();
    // A dry run answers for the choices it was run with.
    useEffect(() => setDryRun(null), [resolutions, allowBreaking, allowLossy, data]);

    if (error) return html`<h1>Review sandbox ${name}</h1><${ErrorBox} error=${error} />`;
    if (!data) return html`<h1>Review sandbox ${name}</h1><${Loading} what="the diff" />`;
    if (!data.sandbox) return html`<h1>No sandbox ${name}</h1><p><a href=${link('sandboxes')}>Back to the sandboxes</a></p>`;

    const report = data.sandboxDiff;
    const conflicts = report.changes.filter((c) => c.status === 'CONFLICT');
    const unresolved = conflicts.filter((c) => !resolutions[c.key]);
    const production = new Map(report.targetChanges.map((c) => [c.key, c]));
    const variables = () => ({
      n: name,
      v: report.versionBefore,
      b: allowBreaking,
      l: allowLossy,
      r: Object.entries(resolutions).map(([key, take]) => ({ key, take })),
    });
    const PROMOTE = `mutation($n: String!, $d: Boolean!, $v: Int!, $b: Boolean, $l: Boolean, $r: [ConflictResolution!]) {
      promoteSandbox(name: $n, dryRun: $d, expectedProductionVersion: $v, allowBreaking: $b, allowLossy: $l, resolutions: $r) { ${REPORT_FIELDS} } }`;
    const doDryRun = () =>
      run(async () => {
        const result = await gql(PRODUCTION, PROMOTE, { ...variables(), d: true });
        setDryRun(result.promoteSandbox);
      });
    const doPromote = () =>
      run(async () => {
        const result = await gql(PRODUCTION, PROMOTE, { ...variables(), d: false });
        setPromoted(result.promoteSandbox);
        reload();
      });

    const blockers = [];
    if (report.failures > 0) blockers.push(`${plural(report.failures, 'change')} refused by production's data: fix ${report.failures === 1 ? 'it' : 'them'} in the sandbox`);
    if (unresolved.length) blockers.push(`${plural(unresolved.length, 'conflict')} to resolve (choose a side below)`);
    if (report.breaking > 0 && !allowBreaking) blockers.push('breaking changes need your confirmation');
    if (report.lossy > 0 && !allowLossy) blockers.push('lossy changes need your confirmation');
    if (!dryRun) blockers.push('run a dry run with these choices first');
    else if (!dryRun.canApply) blockers.push('the dry run says it cannot apply: see its blockers');
    const canPromote = blockers.length === 0 && !busy;

    return html`
      <p><a href=${link('sandboxes')}>← Sandboxes</a></p>
      <h1>Review sandbox ${name} → production</h1>
      <div class="summary" aria-label="Summary">
        <div>Status <${Badge} value=${data.sandbox.status} /></div>
        <div>API impact <${Badge} value=${report.apiImpact} /></div>
        <div><b>${report.changes.length}</b> changes</div>
        <div><b>${report.breaking}</b> breaking</div>
        <div><b>${report.conflicts}</b> conflicts</div>
        <div><b>${report.failures}</b> refused by production's data</div>
        <div><b>${report.lossy}</b> lossy</div>
        <div>Base version <b>${report.baseVersion}</b>, production <b>${report.versionBefore}</b></div>
      </div>
      <div class="actions">
        <a class="button" href=${`/sandboxes/${encodeURIComponent(name)}/changeset.json`} download=${`${name}.changeset.json`}>
          Download changeset</a>
        <a class="button" href=${endpointOf(name)} target="_blank" rel="noopener">Open its playground</a>
        <button type="button" onClick=${reload}>Reload the diff</button>
      </div>
      ${report.blockers.length > 0 &&
      html`<div class="alert" role="alert"><b>Blockers</b><ul>${report.blockers.map((b) => html`<li>${b}</li>`)}</ul></div>`}
      ${promoted && html`<${Promoted} report=${promoted} />`}
      <h2>Changes (${report.changes.length})</h2>
      ${report.changes.length === 0 && html`<p>The sandbox has no changes from its base.</p>`}
      ${groupBy(report.changes, objectOf).map(
        ([object, changes], i) => html`<section aria-labelledby=${'group-' + i}>
          <h3 id=${'group-' + i}>${object}</h3>
          ${changes.map(
            (c) => html`<${Change} key=${c.key} change=${c} production=${production.get(c.key)} resolution=${resolutions[c.key]}
              onResolve=${(key, take) => setResolutions({ ...resolutions, [key]: take })} />`,
          )}
        </section>`,
      )}
      ${report.targetChanges.length > 0 &&
      html`<details class="panel muted"><summary>Production's own changes since the base (${report.targetChanges.length})</summary>
        <ul>${report.targetChanges.map((c) => html`<li><code>${c.target}</code>: ${c.summary}</li>`)}</ul></details>`}
      <section class="panel" aria-labelledby="promote">
        <h2 id="promote" style="margin-top:0">Promote to production</h2>
        ${report.breaking > 0 &&
        html`<label class="check"><input type="checkbox" checked=${allowBreaking} onChange=${(e) => setAllowBreaking(e.target.checked)} />
          I understand that ${plural(report.breaking, 'breaking change')} will break existing API clients</label>`}
        ${report.lossy > 0 &&
        html`<label class="check"><input type="checkbox" checked=${allowLossy} onChange=${(e) => setAllowLossy(e.target.checked)} />
          Apply ${plural(report.lossy, 'lossy change')} (old values are kept for a revert)</label>`}
        <div class="actions">
          <button type="button" disabled=${busy || report.changes.length === 0} onClick=${doDryRun}>Dry run</button>
          <button type="button" class="primary" disabled=${!canPromote} aria-describedby="promote-blockers" onClick=${doPromote}>
            Promote to production</button>
        </div>
        <div id="promote-blockers" class="hint">${blockers.length ? 'Promotion waits: ' + blockers.join('; ') + '.' : 'Ready to promote.'}</div>
        <${ErrorBox} error=${actionError} />
        ${dryRun && html`<${DryRun} report=${dryRun} title="Dry run" />`}
      </section>`;
  }

  function DryRun({ report, title }) {
    return html`<div class=${report.canApply ? 'notice' : 'alert'} role="status" aria-label=${title}>
      <b>${title}: ${report.canApply ? 'it applies' : 'it cannot apply'}</b>
      — production version ${report.versionBefore} → ${report.versionAfter}
      ${report.blockers.length > 0 && html`<ul>${report.blockers.map((b) => html`<li>${b}</li>`)}</ul>`}
      <table><thead><tr><th scope="col">Change</th><th scope="col">Status</th><th scope="col">Impact</th></tr></thead>
        <tbody>${report.changes.map(
          (c) => html`<tr><td><code>${c.target}</code> ${c.summary}</td><td><${Badge} value=${c.status} /></td>
            <td><${Badge} value=${c.apiImpact} /></td></tr>`,
        )}</tbody></table>
    </div>`;
  }

  function Promoted({ report }) {
    const id = report.promotion && report.promotion.id;
    return html`<div class="notice" role="status">
      <b>Promoted.</b> Production's metadata went from version ${report.versionBefore} to ${report.versionAfter}.${' '}
      ${id && html` It can be undone from <a href=${link('history')}>History</a>.`}
    </div>`;
  }

  // ---- History ------------------------------------------------------------------------

  function History() {
    const [data, error, reload] = useQuery(
      () => gql(PRODUCTION, `{ promotions(first: 50) { id kind source status at by { name email } versionBefore versionAfter
        revertOf revertedAt revertedBy { name } changes { key kind action target summary apiImpact } } }`),
      [],
    );
    return html`<h1>Promotion history</h1>
      <p class="hint">Every promotion and revert of production's metadata, newest first.</p>
      <${ErrorBox} error=${error} />
      ${!data && !error && html`<${Loading} what="the history" />`}
      ${data && data.promotions.length === 0 && html`<p>Nothing has been promoted yet.</p>`}
      ${data && data.promotions.map((p) => html`<${PromotionEntry} key=${p.id} promotion=${p} onReverted=${reload} />`)}`;
  }

  function PromotionEntry({ promotion: p, onReverted }) {
    const [preview, setPreview] = useState(null);
    const [allowLossy, setAllowLossy] = useState(false);
    const [done, setDone] = useState(null);
    const [run, busy, error] = useAction();
    const REVERT = `mutation($id: ID!, $d: Boolean!, $l: Boolean) { revertPromotion(id: $id, dryRun: $d, allowLossy: $l) { ${REPORT_FIELDS} } }`;
    const revertable = p.status === 'APPLIED' && p.kind !== 'REVERT';
    // A dry run answers for the options it was run with.
    useEffect(() => setPreview(null), [allowLossy]);
    const dry = () => run(async () => setPreview((await gql(PRODUCTION, REVERT, { id: p.id, d: true, l: allowLossy })).revertPromotion));
    const revert = () =>
      run(async () => {
        setDone((await gql(PRODUCTION, REVERT, { id: p.id, d: false, l: allowLossy })).revertPromotion);
        setPreview(null);
        onReverted();
      });
    return html`<article class="panel" aria-label=${`${p.kind} ${p.source} at ${fmtTime(p.at)}`}>
      <h2 style="margin:0 0 0.3rem;font-size:1.05rem">
        <span class="badge neutral">${p.kind}</span> ${p.kind === 'REVERT' ? `undoes ${(p.revertOf || p.source).slice(0, 8)}` : p.source}
        <${Badge} value=${p.status} /></h2>
      <div class="hint">${fmtTime(p.at)} by ${p.by ? `${p.by.name} (${p.by.email})` : 'the command line'} —
        version ${p.versionBefore} → ${p.versionAfter}
        ${p.revertedAt && ` — reverted ${fmtTime(p.revertedAt)}${p.revertedBy ? ' by ' + p.revertedBy.name : ''}`}</div>
      <ul>${p.changes.map((c) => html`<li><${Badge} value=${c.apiImpact} /> ${c.action.toLowerCase()} <code>${c.target}</code>: ${c.summary}</li>`)}</ul>
      ${revertable &&
      html`<div class="actions">
        <label class="check"><input type="checkbox" checked=${allowLossy} onChange=${(e) => setAllowLossy(e.target.checked)} /> Allow lossy</label>
        <button type="button" disabled=${busy} onClick=${dry}>Dry run the revert</button>
        <button type="button" class="danger" disabled=${busy || !preview || !preview.canApply} onClick=${revert}
          aria-describedby=${'revert-hint-' + p.id}>Revert</button>
        <span id=${'revert-hint-' + p.id} class="hint">${!preview ? 'Run the revert dry run first.' : ''}</span>
      </div>`}
      <${ErrorBox} error=${error} />
      ${preview && html`<${DryRun} report=${preview} title="Revert dry run" />`}
      ${done && html`<div class="notice" role="status"><b>Reverted.</b> Production's metadata is at version ${done.versionAfter}.</div>`}
    </article>`;
  }

  // ---- Pipeline at a glance ----------------------------------------------------------

  let chartLoading = null;
  /** Chart.js, loaded from this server the first time a chart is drawn. */
  function loadChart() {
    if (window.Chart) return Promise.resolve(window.Chart);
    if (!chartLoading) {
      chartLoading = new Promise((resolve, reject) => {
        const script = document.createElement('script');
        script.src = '/console/assets/chart.umd.min.js';
        script.onload = () => resolve(window.Chart);
        script.onerror = () => reject(new Error('the chart library did not load'));
        document.head.appendChild(script);
      });
    }
    return chartLoading;
  }

  const PALETTE = ['#1d4ed8', '#b45309', '#15803d', '#7e22ce', '#be123c', '#0e7490', '#4d7c0f', '#9a3412'];

  /** A Chart.js chart; `summary` is what a screen reader hears. */
  function ChartBox({ config, summary }) {
    const canvas = useRef(null);
    useEffect(() => {
      let chart = null;
      let live = true;
      loadChart().then((Chart) => {
        if (live && canvas.current) chart = new Chart(canvas.current, config);
      });
      return () => {
        live = false;
        if (chart) chart.destroy();
      };
    }, [JSON.stringify(config.data)]);
    return html`<div class="chart"><canvas ref=${canvas} role="img" aria-label=${summary}></canvas></div>`;
  }

  const isoDate = (d) => d.toISOString().slice(0, 10);

  function Pipeline({ workspace }) {
    const year = new Date().getUTCFullYear();
    const [range, setRange] = useState({ from: `${year}-01-01`, to: `${year}-12-31`, period: 'QUARTER' });
    const [pipelineId, setPipelineId] = useState('');
    const [currency, setCurrency] = useState('');
    useEffect(() => setPipelineId(''), [workspace]);
    const [pipelines, pipelinesError] = useQuery(
      () => gql(workspace, '{ pipelines(first: 100) { nodes { id name isDefault staleAfterDays } } users(first: 500) { nodes { id name } } }'),
      [workspace],
    );
    const chosen = pipelines && (pipelines.pipelines.nodes.find((p) => p.id === pipelineId) ||
      pipelines.pipelines.nodes.find((p) => p.isDefault) || pipelines.pipelines.nodes[0]);
    const [data, error] = useQuery(async () => {
      if (!chosen) return null;
      return gql(workspace, `query($p: ID!, $from: Date!, $to: Date!, $fromAt: DateTime!, $toAt: DateTime!, $period: ForecastPeriod!) {
          forecast(pipelineId: $p, from: $from, to: $to, period: $period, by: OWNER) { period ownerId currency deals pipeline weighted commit bestCase closedWon }
          funnel(pipelineId: $p, from: $fromAt, to: $toAt) { won lost winRate averageWonAmount staleDeals averageSalesCycleDays
            stages { stageId name entered movedOn won lost conversionToNext stale } }
          opportunities(first: 10, filter: { pipelineId: { eq: $p }, isStale: true }, orderBy: [{ field: AMOUNT, direction: DESC }]) {
            totalCount nodes { id name amount currency closeDate owner { name } stage { name } } } }`,
        { p: chosen.id, from: range.from, to: range.to, fromAt: `${range.from}T00:00:00Z`, toAt: `${range.to}T23:59:59Z`, period: range.period });
    }, [workspace, chosen && chosen.id, range.from, range.to, range.period]);

    const names = new Map(pipelines ? pipelines.users.nodes.map((u) => [u.id, u.name]) : []);
    const owner = (id) => (id ? names.get(id) || id.slice(0, 8) : 'No owner');
    return html`<h1>Pipeline at a glance — ${workspace === PRODUCTION ? 'production' : 'sandbox ' + workspace}</h1>
      <${ErrorBox} error=${pipelinesError || error} />
      <form class="inline" aria-label="Pipeline and period" onSubmit=${(e) => e.preventDefault()}>
        <div class="field"><label for="pl">Pipeline</label>
          <select id="pl" value=${chosen ? chosen.id : ''} onChange=${(e) => setPipelineId(e.target.value)}>
            ${pipelines && pipelines.pipelines.nodes.map((p) => html`<option value=${p.id}>${p.name}</option>`)}
          </select></div>
        <div class="field"><label for="from">From</label>
          <input id="from" type="date" value=${range.from} onChange=${(e) => setRange({ ...range, from: e.target.value })} /></div>
        <div class="field"><label for="to">To</label>
          <input id="to" type="date" value=${range.to} onChange=${(e) => setRange({ ...range, to: e.target.value })} /></div>
        <div class="field"><label for="period">Period</label>
          <select id="period" value=${range.period} onChange=${(e) => setRange({ ...range, period: e.target.value })}>
            <option value="MONTH">Month</option><option value="QUARTER">Quarter</option><option value="YEAR">Year</option>
          </select></div>
      </form>
      ${!data && !error && chosen && html`<${Loading} what="the forecast" />`}
      ${pipelines && !chosen && html`<p>This workspace has no pipeline.</p>`}
      ${data && html`<${PipelineCharts} data=${data} owner=${owner} stale=${chosen.staleAfterDays} workspace=${workspace}
        currency=${currency} setCurrency=${setCurrency} />`}`;
  }

  function PipelineCharts({ data, owner, stale, workspace, currency, setCurrency }) {
    const f = data.funnel;
    // Amounts in different currencies are never added: the chart shows one.
    const currencies = [...new Set(data.forecast.map((r) => r.currency))].sort();
    const shown = currencies.includes(currency) ? currency : currencies[0] || '';
    const rows = data.forecast.filter((r) => r.currency === shown);
    const periods = [...new Set(rows.map((r) => r.period))].sort();
    const owners = [...new Set(rows.map((r) => r.ownerId || ''))];
    const forecastConfig = {
      type: 'bar',
      data: {
        labels: periods,
        datasets: owners.map((o, i) => ({
          label: owner(o || null),
          backgroundColor: PALETTE[i % PALETTE.length],
          data: periods.map((p) =>
            rows.filter((r) => r.period === p && (r.ownerId || '') === o).reduce((sum, r) => sum + Number(r.weighted), 0)),
        })),
      },
      options: { responsive: true, maintainAspectRatio: false, animation: false,
        scales: { x: { stacked: true }, y: { stacked: true, title: { display: true, text: `Weighted amount (${shown})` } } } },
    };
    const funnelConfig = {
      type: 'bar',
      data: {
        labels: f.stages.map((s) => s.name),
        datasets: [
          { label: 'Entered', backgroundColor: '#1d4ed8', data: f.stages.map((s) => s.entered) },
          { label: 'Won', backgroundColor: '#15803d', data: f.stages.map((s) => s.won) },
          { label: 'Lost', backgroundColor: '#b91c1c', data: f.stages.map((s) => s.lost) },
        ],
      },
      options: { indexAxis: 'y', responsive: true, maintainAspectRatio: false, animation: false },
    };
    const total = rows.reduce((sum, r) => sum + Number(r.weighted), 0);
    return html`
      <div class="summary" aria-label="Pipeline figures">
        <div>Win rate <b>${fmtPercent(f.winRate)}</b></div>
        <div>Won <b>${f.won}</b>, lost <b>${f.lost}</b></div>
        <div>Stale deals <b>${f.staleDeals}</b> (no change for ${stale} days)</div>
        <div>Average won <b>${fmtNumber(f.averageWonAmount, 2)}</b></div>
        <div>Sales cycle <b>${fmtNumber(f.averageSalesCycleDays, 1)}</b> days</div>
      </div>
      <div class="grid2">
        <section aria-labelledby="forecast-h"><h2 id="forecast-h">Forecast by period and owner</h2>
          ${currencies.length > 1 &&
          html`<label for="currency">Currency</label>${' '}<select id="currency" value=${shown} onChange=${(e) => setCurrency(e.target.value)}>
            ${currencies.map((c) => html`<option value=${c}>${c}</option>`)}</select>`}
          <${ChartBox} config=${forecastConfig}
            summary=${`Weighted forecast over ${plural(periods.length, 'period')} and ${plural(owners.length, 'owner')}: ${fmtNumber(total, 2)} ${shown} in all`} />
        </section>
        <section aria-labelledby="funnel-h"><h2 id="funnel-h">Funnel by stage</h2>
          <${ChartBox} config=${funnelConfig}
            summary=${`Funnel of ${plural(f.stages.length, 'stage')}: ${f.stages.map((s) => `${s.name} ${s.entered} entered`).join(', ')}`} />
        </section>
      </div>
      <details><summary>Forecast as a table</summary>
        <table><thead><tr><th scope="col">Period</th><th scope="col">Owner</th><th scope="col">Currency</th>
          <th scope="col" class="num">Deals</th><th scope="col" class="num">Pipeline</th><th scope="col" class="num">Weighted</th>
          <th scope="col" class="num">Commit</th><th scope="col" class="num">Best case</th><th scope="col" class="num">Won</th></tr></thead>
          <tbody>${data.forecast.map((r) => html`<tr><td>${r.period}</td><td>${owner(r.ownerId)}</td><td>${r.currency}</td>
            <td class="num">${r.deals}</td><td class="num">${fmtNumber(r.pipeline, 2)}</td><td class="num">${fmtNumber(r.weighted, 2)}</td>
            <td class="num">${fmtNumber(r.commit, 2)}</td><td class="num">${fmtNumber(r.bestCase, 2)}</td><td class="num">${fmtNumber(r.closedWon, 2)}</td></tr>`)}
          </tbody></table></details>
      <details><summary>Funnel as a table</summary>
        <table><thead><tr><th scope="col">Stage</th><th scope="col" class="num">Entered</th><th scope="col" class="num">Moved on</th>
          <th scope="col" class="num">Won</th><th scope="col" class="num">Lost</th><th scope="col" class="num">To next</th><th scope="col" class="num">Stale</th></tr></thead>
          <tbody>${f.stages.map((s) => html`<tr><td>${s.name}</td><td class="num">${s.entered}</td><td class="num">${s.movedOn}</td>
            <td class="num">${s.won}</td><td class="num">${s.lost}</td><td class="num">${fmtPercent(s.conversionToNext)}</td><td class="num">${s.stale}</td></tr>`)}
          </tbody></table></details>
      <h2>Stale deals (${data.opportunities.totalCount})</h2>
      ${data.opportunities.nodes.length === 0
        ? html`<p>No open deal is stale.</p>`
        : html`<table><thead><tr><th scope="col">Deal</th><th scope="col">Stage</th><th scope="col">Owner</th>
            <th scope="col" class="num">Amount</th><th scope="col">Close date</th></tr></thead>
            <tbody>${data.opportunities.nodes.map((o) => html`<tr>
              <td><a href=${link('records', workspace, 'Opportunity', o.id)}>${o.name}</a></td><td>${o.stage ? o.stage.name : '—'}</td>
              <td>${o.owner ? o.owner.name : '—'}</td><td class="num">${fmtNumber(o.amount, 2)} ${o.currency || ''}</td>
              <td>${o.closeDate || '—'}</td></tr>`)}</tbody></table>`}`;
  }

  // ---- Imports -------------------------------------------------------------------------

  function Imports({ workspace }) {
    const [data, error, reload] = useQuery(
      () => gql(workspace, `{ importJobs(first: 50) { id object format fileName mode message dryRun createdAt finishedAt revertedAt
        status { state rowsRead rowsImported rowsCreated rowsUpdated rowsFailed warnings }
        errors(first: 5) { row column code message warning } } }`),
      [workspace],
    );
    const running = data && data.importJobs.some((j) => j.status.state === 'RUNNING');
    const errorFile = (j) =>
      workspace === PRODUCTION
        ? `/imports/${encodeURIComponent(j.id)}/errors.csv`
        : `/sandboxes/${encodeURIComponent(workspace)}/imports/${encodeURIComponent(j.id)}/errors.csv`;
    useEffect(() => {
      if (!running) return undefined;
      const timer = setTimeout(reload, 1000);
      return () => clearTimeout(timer);
    }, [data]);
    return html`<h1>Imports — ${workspace === PRODUCTION ? 'production' : 'sandbox ' + workspace}</h1>
      <p class="hint">Files are imported with <code>POST /imports</code> or <code>crm import</code>; their jobs show here,
        refreshed while they run.</p>
      <${ErrorBox} error=${error} />
      ${!data && !error && html`<${Loading} what="the imports" />`}
      ${data && data.importJobs.length === 0 && html`<p>No imports yet.</p>`}
      ${data && data.importJobs.length > 0 &&
      html`<table><thead><tr><th scope="col">Started</th><th scope="col">File</th><th scope="col">Object</th><th scope="col">Mode</th>
          <th scope="col">Status</th><th scope="col">Rows</th><th scope="col">Errors</th></tr></thead>
        <tbody>${data.importJobs.map((j) => html`<tr>
          <td>${fmtTime(j.createdAt)}</td><td>${j.fileName || j.format}${j.dryRun ? ' (dry run)' : ''}</td><td>${j.object}</td>
          <td>${j.mode}</td><td><${Badge} value=${j.status.state} />${j.revertedAt ? html` <${Badge} value="REVERTED" />` : ''}
            ${j.message && html`<div class="hint">${j.message}</div>`}</td>
          <td>${fmtNumber(j.status.rowsRead)} read: ${fmtNumber(j.status.rowsCreated)} created, ${fmtNumber(j.status.rowsUpdated)} updated,${' '}
            ${fmtNumber(j.status.rowsFailed)} refused${j.status.warnings ? `, ${j.status.warnings} warnings` : ''}
            ${j.status.state === 'RUNNING' && html`<div><progress aria-label=${`Import of ${j.fileName || j.object} running`}></progress></div>`}</td>
          <td>${j.errors.length > 0
            ? html`<ul>${j.errors.map((e) => html`<li>row ${e.row}${e.column ? ` (${e.column})` : ''}: ${e.message}</li>`)}</ul>
                <a href=${errorFile(j)} download>Error file (CSV)</a>`
            : 'none'}</td></tr>`)}</tbody></table>`}`;
  }

  // ---- Automation ---------------------------------------------------------------------

  function Automation({ workspace, admin }) {
    const sandbox = workspace !== PRODUCTION;
    const [rules, rulesError] = useQuery(
      () => gql(workspace, `{ workflowRules(first: 100) { nodes { id name object trigger isActive } }
        validationRules(first: 100) { nodes { id name object isActive } } }`),
      [workspace],
    );
    // Runs and captured messages are for admins.
    const [runs, runsError] = useQuery(
      () => (admin
        ? gql(workspace, '{ workflowRuns(first: 30) { id ruleName object recordId trigger status error startedAt } }')
        : Promise.resolve(null)),
      [workspace, admin],
    );
    const data = rules && { ...rules, workflowRuns: runs ? runs.workflowRuns : [] };
    const error = rulesError || runsError;
    const [captured, capturedError] = useQuery(
      () => (sandbox && admin
        ? gql(workspace, `{ capturedEmails(first: 20) { id createdAt from to subject textBody htmlBody template }
            capturedWebhooks(first: 20) { id createdAt url type subscription payload headers { name value } } }`)
        : Promise.resolve(null)),
      [workspace, admin],
    );
    return html`<h1>Automation — ${sandbox ? 'sandbox ' + workspace : 'production'}</h1>
      <${ErrorBox} error=${error || capturedError} />
      ${!data && !error && html`<${Loading} what="the rules" />`}
      ${data && html`<div class="grid2">
        <section><h2>Workflow rules</h2>${data.workflowRules.nodes.length === 0 ? html`<p>None.</p>` : html`<table>
          <thead><tr><th scope="col">Rule</th><th scope="col">Object</th><th scope="col">Trigger</th><th scope="col">Active</th></tr></thead>
          <tbody>${data.workflowRules.nodes.map((r) => html`<tr><td>${r.name}</td><td>${r.object}</td><td>${r.trigger}</td><td>${r.isActive ? 'yes' : 'no'}</td></tr>`)}</tbody>
        </table>`}</section>
        <section><h2>Validation rules</h2>${data.validationRules.nodes.length === 0 ? html`<p>None.</p>` : html`<table>
          <thead><tr><th scope="col">Rule</th><th scope="col">Object</th><th scope="col">Active</th></tr></thead>
          <tbody>${data.validationRules.nodes.map((r) => html`<tr><td>${r.name}</td><td>${r.object}</td><td>${r.isActive ? 'yes' : 'no'}</td></tr>`)}</tbody>
        </table>`}</section>
      </div>
      <h2>Recent runs</h2>
      ${!admin ? html`<p class="hint">Rule runs and what sandboxes capture are shown to admins.</p>` : data.workflowRuns.length === 0 ? html`<p>No rule has run yet.</p>` : html`<table>
        <thead><tr><th scope="col">Started</th><th scope="col">Rule</th><th scope="col">Record</th><th scope="col">Trigger</th><th scope="col">Status</th></tr></thead>
        <tbody>${data.workflowRuns.map((r) => html`<tr><td>${fmtTime(r.startedAt)}</td><td>${r.ruleName}</td>
          <td><a href=${link('records', workspace, r.object, r.recordId)}>${r.object} ${r.recordId.slice(0, 8)}</a></td>
          <td>${r.trigger}</td><td><${Badge} value=${r.status} />${r.error && html`<div class="error">${r.error}</div>`}</td></tr>`)}</tbody>
      </table>`}`}
      ${sandbox && captured && html`
        <h2>Captured emails (${captured.capturedEmails.length})</h2>
        <p class="hint">Rendered exactly as production would send them, kept here instead.</p>
        ${captured.capturedEmails.map((m) => html`<article class="panel" aria-label=${'Email ' + m.subject}>
          <h3 style="margin-top:0">${m.subject}</h3>
          <div class="hint">${fmtTime(m.createdAt)} — from ${m.from} to ${m.to.join(', ')}${m.template ? ` — template ${m.template}` : ''}</div>
          ${m.htmlBody
            ? html`<iframe class="email" sandbox="" title=${'Body of ' + m.subject} srcdoc=${m.htmlBody}></iframe>`
            : html`<pre class="json">${m.textBody || ''}</pre>`}
        </article>`)}
        <h2>Captured webhooks (${captured.capturedWebhooks.length})</h2>
        ${captured.capturedWebhooks.map((w) => html`<article class="panel" aria-label=${'Webhook ' + w.type}>
          <h3 style="margin-top:0"><code>${w.type}</code> to ${w.subscription}</h3>
          <div class="hint">${fmtTime(w.createdAt)} — POST ${w.url}</div>
          <details><summary>Headers (${w.headers.length})</summary>
            <table><tbody>${w.headers.map((x) => html`<tr><th scope="row">${x.name}</th><td class="value">${x.value}</td></tr>`)}</tbody></table></details>
          <pre class="json">${JSON.stringify(w.payload, null, 2)}</pre>
        </article>`)}`}`;
  }

  // ---- A record ----------------------------------------------------------------------

  function RecordPage({ workspace, object, id }) {
    const [data, error] = useQuery(async () => {
      const meta = await gql(workspace, 'query($o: String!) { object(name: $o) { name label fields { name label type lookupObject deletedAt } } }', { o: object });
      if (!meta.object) throw new ApiError(`There is no object ${object}.`, 'NOT_FOUND');
      // Deleted fields (listed to admins) have no GraphQL field.
      meta.object.fields = meta.object.fields.filter((f) => !f.deletedAt);
      const field = meta.object.name.charAt(0).toLowerCase() + meta.object.name.slice(1);
      // A lookup is read as the record it refers to, by id.
      const names = meta.object.fields.map((f) => (f.lookupObject ? `${f.name} { id }` : f.name));
      const record = await gql(workspace, `query($id: ID!) { record: ${field}(id: $id) { ${names.join(' ')} } }`, { id });
      return { meta: meta.object, record: record.record };
    }, [workspace, object, id]);
    return html`<h1>${data ? data.meta.label : object} <code>${id}</code></h1>
      <p class="hint">In ${workspace === PRODUCTION ? 'production' : 'sandbox ' + workspace}.</p>
      <${ErrorBox} error=${error} />
      ${data && !data.record && html`<p>No such record (it may have been deleted).</p>`}
      ${data && data.record && html`<table><tbody>${data.meta.fields.map(
        (f) => {
          const value = data.record[f.name];
          const shown = f.lookupObject && value
            ? html`<a href=${link('records', workspace, f.lookupObject, value.id)}>${f.lookupObject} ${value.id.slice(0, 8)}</a>`
            : showValue(value);
          return html`<tr><th scope="row">${f.label}</th><td class="value">${shown}</td></tr>`;
        },
      )}</tbody></table>`}`;
  }

  render(html`<${App} />`, document.getElementById('app'));
})();
