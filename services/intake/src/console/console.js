// nisvakt console: reads /v1/incidents and /v1/alerts, follows /v1/stream
// (server-sent events read with fetch so the token travels in a header,
// never in a URL), counts down to every deadline in Europe/Stockholm time,
// and posts operator commands. It decides nothing: what is reportable and
// when a stage is due comes from the classifier's projection.
'use strict';

const TZ = 'Europe/Stockholm';
const T = {
  sv: {
    skip: 'Hoppa till incidenterna', subtitle: 'Störningar, bedömningar och rapporteringstider',
    yourName: 'Ditt namn', offline: 'Frånkopplad', online: 'Live', logout: 'Glöm token',
    loginTitle: 'Logga in', loginHelp: 'Intake kräver en token. Klistra in din operatörstoken; den sparas bara i den här fliken.',
    token: 'Token', login: 'Logga in', openIncidents: 'Öppna incidenter', noIncidents: 'Inga öppna incidenter.',
    alerts: 'Larm att kvittera', noAlerts: 'Inga okvitterade larm.', times: 'Alla tider i svensk tid (Europe/Stockholm).',
    updated: 'Uppdaterad', reportable: 'Rapporteringspliktig', notReportable: 'Inte rapporteringspliktig (ännu)',
    suspected: 'Misstänkt NIS-incident', personal: 'Personnummer fanns i ärendet', needsAssessment: 'Behöver bedömning',
    tickets: 'ärenden', opened: 'öppnad', started: 'störningen började', ended: 'slutade', ongoing: 'pågår',
    ruleSet: 'Regelverk', identified: 'identifierad', pending: 'blir uppfyllt', stage: 'Skede', due: 'Senast',
    left: 'Tid kvar', status: 'Status', channel: 'Kanal', inTime: 'om', overdue: 'försenad', met: 'rapporterad',
    cancelled: 'avbruten', provisional: 'preliminär: räknas från en rapport som inte är gjord',
    assess: 'Registrera bedömning', report: 'Rapportera skede', resolve: 'Avsluta incidenten',
    careBlocked: 'Vården kunde inte genomföras', harm: 'Patientskada', harmNone: 'Ingen', harmRisk: 'Risk',
    harmOccurred: 'Inträffade', pdb: 'Personuppgiftsincident', sec: 'Säkerhetsskydd', yes: 'Ja', no: 'Nej',
    unknown: 'Vet ej', reasoning: 'Motivering', save: 'Spara', duty: 'Plikt', reportedAt: 'Rapporterad (svensk tid)',
    via: 'Kanal', tool: 'Webbverktyg (IRON)', letter: 'Brev', phone: 'Telefon', email: 'E-post', note: 'Anteckning',
    ack: 'Kvittera', acked: 'Kvitterat', level: 'nivå', needName: 'Skriv ditt namn överst först.',
    sent: 'Skickat. Konsolen uppdateras när det har behandlats.', failed: 'Det gick inte', badToken: 'Token saknas eller är fel.',
    forbidden: 'Din roll får inte göra detta.', unavailable: 'Intake kan inte spara just nu (NATS nås inte). Försök igen.',
    timeline: 'Händelser', details: 'Visa text', duties: { nis: 'NIS', personal_data: 'Personuppgifter (IMY)', lex_maria: 'Lex Maria (IVO)', security_protection: 'Säkerhetsskydd (Säpo)' },
    langButton: 'English', langLabel: 'Switch to English',
  },
  en: {
    skip: 'Skip to incidents', subtitle: 'Disruptions, assessments and reporting deadlines',
    yourName: 'Your name', offline: 'Offline', online: 'Live', logout: 'Forget token',
    loginTitle: 'Sign in', loginHelp: 'Intake requires a token. Paste your operator token; it is kept in this tab only.',
    token: 'Token', login: 'Sign in', openIncidents: 'Open incidents', noIncidents: 'No open incidents.',
    alerts: 'Alerts to acknowledge', noAlerts: 'No unacknowledged alerts.', times: 'All times in Swedish time (Europe/Stockholm).',
    updated: 'Updated', reportable: 'Reportable', notReportable: 'Not reportable (yet)',
    suspected: 'Suspected NIS incident', personal: 'Personal identity numbers were in the ticket', needsAssessment: 'Needs assessment',
    tickets: 'tickets', opened: 'opened', started: 'disruption began', ended: 'ended', ongoing: 'ongoing',
    ruleSet: 'Rule set', identified: 'identified', pending: 'will be met', stage: 'Stage', due: 'Due',
    left: 'Time left', status: 'Status', channel: 'Channel', inTime: 'in', overdue: 'overdue by', met: 'reported',
    cancelled: 'cancelled', provisional: 'provisional: counted from a report not yet made',
    assess: 'Record assessment', report: 'Report a stage', resolve: 'Resolve the incident',
    careBlocked: 'Care could not be carried out', harm: 'Patient harm', harmNone: 'None', harmRisk: 'Risk',
    harmOccurred: 'Occurred', pdb: 'Personal-data breach', sec: 'Security protection', yes: 'Yes', no: 'No',
    unknown: "Don't know", reasoning: 'Reasoning', save: 'Save', duty: 'Duty', reportedAt: 'Reported (Swedish time)',
    via: 'Channel', tool: 'Web tool (IRON)', letter: 'Letter', phone: 'Phone', email: 'E-mail', note: 'Note',
    ack: 'Acknowledge', acked: 'Acknowledged', level: 'level', needName: 'Write your name at the top first.',
    sent: 'Sent. The console updates once it has been processed.', failed: 'It failed', badToken: 'The token is missing or wrong.',
    forbidden: 'Your role may not do this.', unavailable: 'Intake cannot persist right now (NATS unreachable). Try again.',
    timeline: 'Timeline', details: 'Show text', duties: { nis: 'NIS', personal_data: 'Personal data (IMY)', lex_maria: 'Lex Maria (IVO)', security_protection: 'Security protection (Säpo)' },
    langButton: 'Svenska', langLabel: 'Byt till svenska',
  },
};

const state = {
  lang: sessionStorage.getItem('nisvakt.lang') || 'sv',
  token: sessionStorage.getItem('nisvakt.token') || '',
  incidents: [], alerts: [], authNeeded: false, streamAbort: null,
};
const t = (k) => T[state.lang][k] ?? k;
const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const kid of kids.flat()) if (kid !== null && kid !== undefined) e.append(kid);
  return e;
}

// Times: Europe/Stockholm, whatever the browser's zone.
const fmt = () => new Intl.DateTimeFormat(state.lang === 'sv' ? 'sv-SE' : 'en-GB', {
  timeZone: TZ, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit',
});
const local = (iso) => (iso ? fmt().format(new Date(iso)) : '–');
function countdown(iso) {
  const ms = new Date(iso).getTime() - Date.now();
  const abs = Math.abs(ms);
  const d = Math.floor(abs / 86400000), h = Math.floor(abs / 3600000) % 24;
  const m = Math.floor(abs / 60000) % 60, s = Math.floor(abs / 1000) % 60;
  const parts = d > 0 ? `${d} d ${h} h ${m} min` : h > 0 ? `${h} h ${m} min` : `${m} min ${String(s).padStart(2, '0')} s`;
  return { text: ms >= 0 ? `${t('inTime')} ${parts}` : `${t('overdue')} ${parts}`, ms };
}
// A <input type=datetime-local> value in Stockholm time, and back to UTC.
function stockholmInputValue(date) {
  const p = Object.fromEntries(new Intl.DateTimeFormat('sv-SE', { timeZone: TZ, year: 'numeric', month: '2-digit',
    day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).formatToParts(date).map((x) => [x.type, x.value]));
  return `${p.year}-${p.month}-${p.day}T${p.hour}:${p.minute}`;
}
function fromStockholmInput(value) {
  if (!value) return undefined;
  const guess = new Date(`${value}:00Z`);
  // The zone's offset at that moment, found by formatting the guess there.
  const shown = new Date(`${stockholmInputValue(guess)}:00Z`);
  return new Date(guess.getTime() - (shown.getTime() - guess.getTime())).toISOString();
}

function notice(text, good) {
  const n = $('notice');
  n.textContent = text; n.hidden = !text; n.classList.toggle('good', !!good);
  n.setAttribute('role', good ? 'status' : 'alert');
}

async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  let data = null;
  try { data = await r.json(); } catch { data = null; }
  if (r.status === 401) { askForToken(); throw new Error(t('badToken')); }
  if (r.status === 403) throw new Error(t('forbidden'));
  if (r.status === 503) throw new Error(t('unavailable'));
  if (!r.ok) {
    const fields = data && data.fields ? ' ' + data.fields.map((f) => `${f.field}: ${f.message}`).join('; ') : '';
    throw new Error(`${t('failed')} (${r.status}).${fields || (data && data.message ? ' ' + data.message : '')}`);
  }
  return data;
}

function askForToken() {
  state.authNeeded = true;
  $('login').hidden = false; $('main').hidden = true; $('token').focus();
}

let reloadTimer = null;
function scheduleReload() { clearTimeout(reloadTimer); reloadTimer = setTimeout(reload, 200); }
async function reload() {
  try {
    const [inc, al] = await Promise.all([api('GET', '/v1/incidents'), api('GET', '/v1/alerts')]);
    state.incidents = inc.incidents || []; state.alerts = al.alerts || [];
    $('login').hidden = true; $('main').hidden = false;
    render();
    $('updated').textContent = `${t('updated')} ${local(new Date().toISOString())}`;
  } catch (e) {
    if (!state.authNeeded) notice(e.message);
  }
}

// ---- rendering ----
function criterionList(a) {
  const met = (a.criteria || []).filter((c) => c.met);
  // Operators read the Swedish reason; English shows the engineers' text.
  const reason = (c) => (state.lang === 'sv' && c.reason_sv) ? c.reason_sv : (c.reason || '');
  const items = met.map((c) => el('li', { text: `${c.id}: ${reason(c)}${c.met_at ? ` (${local(c.met_at)})` : ''}` }));
  for (const p of a.pending_thresholds || []) items.push(el('li', { text: `${p.criterion}: ${t('pending')} ${local(p.at)}` }));
  return items.length ? el('ul', { class: 'reasons' }, items) : null;
}

function deadlineTable(inc) {
  const ds = inc.deadlines || [];
  if (!ds.length) return null;
  return el('table', { class: 'deadlines' },
    el('thead', {}, el('tr', {}, ['duty', 'stage', 'due', 'left', 'channel'].map((k) => el('th', { scope: 'col', text: t(k) })))),
    el('tbody', {}, ds.map((d) => {
      const label = state.lang === 'sv' ? d.label_sv : d.label_en;
      let left;
      if (d.status === 'pending') left = el('span', { class: 'countdown', 'data-due': d.due_at });
      else left = el('span', { class: 'badge ok', text: d.status === 'met' ? `${t('met')} ${local(d.met_at)}` : t('cancelled') });
      return el('tr', { 'data-deadline-id': d.id, 'data-duty': d.duty, 'data-stage': d.stage, 'data-status': d.status },
        el('td', { text: `${(t('duties')[d.duty] || d.duty)} · ${d.rule_set}` }),
        el('td', { text: label || d.stage }),
        el('td', {}, el('time', { class: 'due', datetime: d.due_at, text: local(d.due_at) }),
          d.provisional ? el('div', { class: 'prov', text: t('provisional') }) : null),
        el('td', {}, left),
        el('td', { text: state.lang === 'sv' ? d.channel_sv : (d.channel_en || d.channel_sv) }));
    })));
}

function incidentData(inc) {
  const reportable = (inc.assessments || []).some((a) => a.reportable);
  const f = inc.flags || {};
  const title = [inc.system || inc.category || inc.id, inc.category && inc.system ? `(${inc.category})` : null].filter(Boolean).join(' ');
  return el('div', { class: 'data' },
    el('h3', { text: title }),
    el('p', { class: 'meta', text: `${inc.id} · ${(inc.units || []).join(', ')} · ${inc.ticket_count} ${t('tickets')} · ${t('started')} ${local(inc.disruption_started_at)} · ${inc.disruption_ended_at ? `${t('ended')} ${local(inc.disruption_ended_at)}` : t('ongoing')}` }),
    el('div', { class: 'badges' },
      el('span', { class: reportable ? 'badge bad' : 'badge', text: reportable ? t('reportable') : t('notReportable') }),
      f.suspected_nis ? el('span', { class: 'badge warn', text: t('suspected') }) : null,
      f.needs_assessment ? el('span', { class: 'badge warn', text: t('needsAssessment') }) : null,
      f.personal_identifiers ? el('span', { class: 'badge warn', text: t('personal') }) : null),
    (inc.assessments || []).map((a) => el('div', { class: 'assessment' },
      el('h4', { text: `${t('ruleSet')} ${a.rule_set} ${a.rule_set_version}: ${a.reportable ? t('reportable') : t('notReportable')}${a.identified_at ? ` · ${t('identified')} ${local(a.identified_at)}` : ''}` }),
      criterionList(a))),
    deadlineTable(inc),
    (inc.timeline || []).length ? el('details', {}, el('summary', { text: t('timeline') }),
      el('ul', { class: 'timeline' }, inc.timeline.slice(-30).reverse().map((e) => el('li', { text: `${local(e.at)} ${e.text}` })))) : null);
}

function select(name, options) {
  return el('select', { name }, options.map(([v, label]) => el('option', { value: v, text: label })));
}
function field(labelKey, control, wide) { return el('label', { class: wide ? 'wide' : undefined }, el('span', { text: t(labelKey) }), control); }
function yesNo(name) { return select(name, [['', t('unknown')], ['true', t('yes')], ['false', t('no')]]); }

function actionForms(inc) {
  const id = inc.id;
  const send = (path, build) => async (ev) => {
    ev.preventDefault();
    const name = $('operator-name').value.trim();
    if (!name) { notice(t('needName')); $('operator-name').focus(); return; }
    const form = ev.currentTarget; const btn = form.querySelector('button');
    btn.disabled = true;
    try { await api('POST', path, build(new FormData(form), name)); notice(t('sent'), true); scheduleReload(); }
    catch (e) { notice(e.message); }
    finally { btn.disabled = false; }
  };
  const bool = (v) => (v === 'true' ? true : v === 'false' ? false : undefined);
  const stages = [...new Map((inc.deadlines || []).filter((d) => d.status === 'pending')
    .map((d) => [`${d.duty}|${d.stage}`, d])).values()];
  const reportAt = el('input', { type: 'datetime-local', name: 'reported_at', value: stockholmInputValue(new Date()) });
  return el('div', { class: 'actions' },
    el('details', { class: 'act' }, el('summary', { text: t('assess') }),
      el('form', { 'data-form': 'assessment', onsubmit: send(`/v1/incidents/${encodeURIComponent(id)}/assessment`, (fd, name) => ({
        assessed_by: name, care_blocked: bool(fd.get('care_blocked')), patient_harm: fd.get('patient_harm'),
        personal_data_breach: bool(fd.get('personal_data_breach')), security_protection: bool(fd.get('security_protection')),
        reasoning: fd.get('reasoning') || undefined })) },
      field('careBlocked', yesNo('care_blocked')),
      field('harm', select('patient_harm', [['none', t('harmNone')], ['risk', t('harmRisk')], ['occurred', t('harmOccurred')]])),
      field('pdb', yesNo('personal_data_breach')), field('sec', yesNo('security_protection')),
      field('reasoning', el('textarea', { name: 'reasoning', rows: 2 }), true),
      el('div', {}, el('button', { type: 'submit', text: t('save') })))),
    el('details', { class: 'act' }, el('summary', { text: t('report') }),
      el('form', { 'data-form': 'report', onsubmit: send(`/v1/incidents/${encodeURIComponent(id)}/reports`, (fd, name) => {
        const [duty, stage] = String(fd.get('stage')).split('|');
        return { duty, stage, reported_by: name, channel: fd.get('channel'), reported_at: fromStockholmInput(fd.get('reported_at')) };
      }) },
      field('stage', select('stage', stages.length ? stages.map((d) => [`${d.duty}|${d.stage}`,
        `${(t('duties')[d.duty] || d.duty)} – ${state.lang === 'sv' ? d.label_sv : d.label_en}`]) : [['nis|1', 'NIS – Skede 1']])),
      field('via', select('channel', [['tool', t('tool')], ['letter', t('letter')], ['phone', t('phone')], ['email', t('email')]])),
      field('reportedAt', reportAt),
      el('div', {}, el('button', { type: 'submit', text: t('save') })))),
    el('details', { class: 'act' }, el('summary', { text: t('resolve') }),
      el('form', { 'data-form': 'resolve', onsubmit: send(`/v1/incidents/${encodeURIComponent(id)}/resolve`, (fd, name) => ({
        resolved_by: name, note: fd.get('note') || undefined })) },
      field('note', el('input', { name: 'note' }), true),
      el('div', {}, el('button', { type: 'submit', class: 'secondary', text: t('resolve') })))));
}

// Cards are kept per incident; only their data part is replaced, so a form
// being filled in survives every live update.
const cards = new Map();
function render() {
  const list = $('incident-list');
  const seen = new Set();
  for (const inc of state.incidents) {
    seen.add(inc.id);
    let card = cards.get(inc.id);
    const actionsKey = JSON.stringify([(inc.deadlines || []).filter((d) => d.status === 'pending').map((d) => d.duty + d.stage), state.lang]);
    if (!card) {
      card = el('article', { class: 'incident', 'data-incident-id': inc.id, 'aria-label': inc.system || inc.id });
      card.append(incidentData(inc), actionForms(inc));
      card.dataset.actionsKey = actionsKey;
      cards.set(inc.id, card);
    } else {
      card.querySelector('.data').replaceWith(incidentData(inc));
      const busy = card.querySelector('.actions').contains(document.activeElement) || card.querySelector('details.act[open]');
      if (card.dataset.actionsKey !== actionsKey && !busy) {
        card.querySelector('.actions').replaceWith(actionForms(inc));
        card.dataset.actionsKey = actionsKey;
      }
    }
    card.classList.toggle('reportable', (inc.assessments || []).some((a) => a.reportable));
    list.append(card); // keeps the server's order
  }
  for (const [id, card] of cards) if (!seen.has(id)) { card.remove(); cards.delete(id); }
  $('no-incidents').hidden = state.incidents.length > 0;

  const al = $('alert-list');
  al.replaceChildren(...state.alerts.map((a) => el('li', { class: `alert ${a.severity}`, 'data-alert-id': a.id, 'data-incident-id': a.incident_id },
    el('h3', { text: state.lang === 'sv' ? a.title_sv : a.title_en }),
    el('div', { class: 'when', text: `${local(a.raised_at)} · ${a.reason} · ${t('level')} ${a.level} · ${a.incident_id}` }),
    el('details', {}, el('summary', { text: t('details') }), el('div', { text: state.lang === 'sv' ? a.body_sv : a.body_en })),
    el('button', { type: 'button', class: 'ack', text: t('ack'), onclick: async (ev) => {
      const name = $('operator-name').value.trim();
      if (!name) { notice(t('needName')); $('operator-name').focus(); return; }
      ev.currentTarget.disabled = true;
      try {
        await api('POST', `/v1/alerts/${encodeURIComponent(a.id)}/ack`, { acked_by: name });
        notice(t('sent'), true);
        scheduleReload();
      } catch (e) { notice(e.message); ev.currentTarget.disabled = false; }
    } }))));
  $('no-alerts').hidden = state.alerts.length > 0;
  tick();
}

function tick() {
  for (const c of document.querySelectorAll('.countdown[data-due]')) {
    const { text, ms } = countdown(c.dataset.due);
    c.textContent = text;
    c.classList.toggle('late', ms < 0);
    c.classList.toggle('soon', ms >= 0 && ms < 3600000);
  }
}

function applyLang() {
  document.documentElement.lang = state.lang;
  for (const e of document.querySelectorAll('[data-i18n]')) e.textContent = t(e.dataset.i18n);
  $('lang').textContent = t('langButton'); $('lang').setAttribute('aria-label', t('langLabel'));
  setLive($('live').classList.contains('on'));
  for (const [, card] of cards) card.remove();
  cards.clear();
  render();
}

function setLive(on) {
  const l = $('live');
  l.classList.toggle('on', on); l.classList.toggle('off', !on);
  l.textContent = on ? t('online') : t('offline');
}

// ---- the live stream: SSE over fetch, reconnecting with back-off ----
async function follow() {
  let wait = 1000;
  for (;;) {
    const ctrl = new AbortController(); state.streamAbort = ctrl;
    try {
      const headers = { Accept: 'text/event-stream' };
      if (state.token) headers.Authorization = `Bearer ${state.token}`;
      const r = await fetch('/v1/stream', { headers, signal: ctrl.signal });
      if (r.status === 401) { setLive(false); askForToken(); return; }
      if (!r.ok || !r.body) throw new Error(String(r.status));
      setLive(true); wait = 1000;
      scheduleReload(); // catch up on what happened while away
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i); buf = buf.slice(i + 2);
          const ev = /^event: ?(.*)$/m.exec(block);
          if (ev && (ev[1] === 'change' || ev[1] === 'reload')) scheduleReload();
        }
      }
    } catch (e) {
      if (ctrl.signal.aborted) return;
    }
    setLive(false);
    await new Promise((res) => setTimeout(res, wait));
    wait = Math.min(wait * 2, 15000);
  }
}

function start() {
  $('operator-name').value = sessionStorage.getItem('nisvakt.name') || '';
  $('operator-name').addEventListener('change', (e) => sessionStorage.setItem('nisvakt.name', e.target.value.trim()));
  $('lang').addEventListener('click', () => {
    state.lang = state.lang === 'sv' ? 'en' : 'sv';
    sessionStorage.setItem('nisvakt.lang', state.lang);
    applyLang();
  });
  $('login').addEventListener('submit', (e) => {
    e.preventDefault();
    state.token = $('token').value.trim();
    sessionStorage.setItem('nisvakt.token', state.token);
    state.authNeeded = false; $('token').value = ''; notice('');
    $('logout').hidden = false;
    reload(); follow();
  });
  $('logout').hidden = !state.token;
  $('logout').addEventListener('click', () => {
    sessionStorage.removeItem('nisvakt.token'); state.token = '';
    if (state.streamAbort) state.streamAbort.abort();
    location.reload();
  });
  applyLang();
  reload();
  follow();
  setInterval(tick, 1000);
  // A slow safety net: the projection is the truth even if an event is lost.
  setInterval(() => { if (!state.authNeeded) reload(); }, 60000);
}
start();
