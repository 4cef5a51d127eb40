// DiffuSharp's page: one script, no framework. Talks to /api (jobs followed over Server-Sent Events) and draws the
// training dashboard from /api/runs.
'use strict';
const $ = id => document.getElementById(id);
let models = [], job = null, events = null, previewCount = 0;

async function getJson(url, options) {
  const r = await fetch(url, options);
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.detail || `${r.status} ${r.statusText}`);
  return body;
}

// ---- tabs
document.querySelectorAll('.tab').forEach(b => b.addEventListener('click', () => {
  document.querySelectorAll('.tab').forEach(t => t.classList.toggle('active', t === b));
  $('page-generate').hidden = b.dataset.tab !== 'generate';
  $('page-dashboard').hidden = b.dataset.tab !== 'dashboard';
  if (b.dataset.tab === 'dashboard') loadRuns();
}));

// ---- models and samplers
async function init() {
  models = await getJson('/api/models');
  $('model').innerHTML = models.map(m => `<option value="${esc(m.name)}">${esc(m.name)} (${m.kind}, ${m.width}×${m.height})</option>`).join('');
  const samplers = await getJson('/api/samplers');
  $('sampler').innerHTML = samplers.map(s => `<option>${esc(s.name)}</option>`).join('');
  modelChanged();
  await loadGallery();
}

function currentModel() { return models.find(m => m.name === $('model').value); }

function modelChanged() {
  const m = currentModel();
  if (!m) return;
  document.body.dataset.kind = m.kind;
  if (m.controlnets > 0) document.body.dataset.controlnet = '1'; else delete document.body.dataset.controlnet;
  controlRows(m.controlnet_names || []);
  $('class').innerHTML = (m.classes.length ? '<option value="">one of each</option>' : '<option value="">(unconditional)</option>')
    + m.classes.map((c, i) => `<option value="${esc(c)}">${i}: ${esc(c)}</option>`).join('');
  $('sampler').value = m.default_sampler;
  $('width').value = m.width; $('height').value = m.height;
  if (m.kind === 'pipeline') { $('cfg').value = 7.5; resizeCanvases(m.width, m.height); }
  else { $('cfg').value = 1; $('mode').value = 'txt2img'; }
  modeChanged();
}

function modeChanged() { document.body.dataset.mode = currentModel()?.kind === 'pipeline' ? $('mode').value : 'txt2img'; }

$('model').addEventListener('change', modelChanged);
$('mode').addEventListener('change', modeChanged);
$('mix').addEventListener('input', () => { $('mix-value').textContent = $('mix').value; });
$('mix').addEventListener('change', () => { if ($('interp').checked && !job) generate(); });
['width', 'height'].forEach(id => $(id).addEventListener('change', () => resizeCanvases(+$('width').value, +$('height').value)));

// ---- canvases: the init image, the mask painted over it, one control image per ControlNet
function resizeCanvases(w, h) {
  for (const c of [$('init-canvas'), $('mask-canvas'), ...document.querySelectorAll('.control-canvas')]) {
    if (c.width === w && c.height === h) continue;
    c.width = w; c.height = h;
  }
  fillInit(); clearCanvas($('mask-canvas'));
  document.querySelectorAll('.control-canvas').forEach(clearCanvas);
}

function fillInit() {
  const c = $('init-canvas'), g = c.getContext('2d');
  const grad = g.createLinearGradient(0, 0, c.width, c.height);
  grad.addColorStop(0, '#d0a070'); grad.addColorStop(1, '#305080');
  g.fillStyle = grad; g.fillRect(0, 0, c.width, c.height);
}

function clearCanvas(c) { const g = c.getContext('2d'); g.fillStyle = '#000'; g.fillRect(0, 0, c.width, c.height); }

function paintable(c) {
  let down = false;
  const at = e => { const r = c.getBoundingClientRect(); return [(e.clientX - r.left) * c.width / r.width, (e.clientY - r.top) * c.height / r.height]; };
  const dot = e => {
    const [x, y] = at(e), g = c.getContext('2d');
    g.fillStyle = '#fff'; g.beginPath(); g.arc(x, y, Math.max(1.5, c.width / 12), 0, 2 * Math.PI); g.fill();
    c.dataset.painted = String(+(c.dataset.painted || 0) + 1);
  };
  c.addEventListener('pointerdown', e => { down = true; c.setPointerCapture(e.pointerId); dot(e); });
  c.addEventListener('pointermove', e => { if (down) dot(e); });
  c.addEventListener('pointerup', () => { down = false; });
}
paintable($('mask-canvas'));
$('clear-mask').addEventListener('click', () => { clearCanvas($('mask-canvas')); $('mask-canvas').dataset.painted = '0'; });

function readFile(input) {
  return new Promise((resolve, reject) => {
    const f = input.files[0]; if (!f) return reject(new Error('no file'));
    const img = new Image(); img.onload = () => resolve(img); img.onerror = () => reject(new Error('not an image'));
    img.src = URL.createObjectURL(f);
  });
}

$('init-file').addEventListener('change', async () => {
  const img = await readFile($('init-file')), c = $('init-canvas');
  c.getContext('2d').drawImage(img, 0, 0, c.width, c.height);
});

// ---- ControlNets: one row per net of the model (its name, a checkbox to use it, a scale and a control image drawn on
// a canvas or made from an uploaded picture by the server's edge or silhouette detector); every checked row is sent
function controlRows(names) {
  const box = $('control-nets'), w = +$('width').value || 64, h = +$('height').value || 64;
  box.innerHTML = '';
  for (const name of names) {
    const row = $('control-row').content.firstElementChild.cloneNode(true);
    row.dataset.name = name;
    row.querySelector('.control-name').textContent = name;
    const c = row.querySelector('.control-canvas'), use = row.querySelector('.use-control');
    c.width = w; c.height = h; clearCanvas(c); paintable(c);
    use.addEventListener('change', () => row.classList.toggle('enabled', use.checked));
    row.querySelector('.clear-control').addEventListener('click', () => clearCanvas(c));
    if (name === 'silhouette') row.querySelector('.control-detector').value = 'silhouette';
    const file = row.querySelector('.control-file');
    file.addEventListener('change', async () => {
      try {
        const img = await readFile(file), tmp = document.createElement('canvas');
        tmp.width = img.naturalWidth; tmp.height = img.naturalHeight; tmp.getContext('2d').drawImage(img, 0, 0);
        const r = await getJson('/api/edges', { method: 'POST', headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ image: tmp.toDataURL('image/png'), width: c.width, height: c.height, mode: row.querySelector('.control-detector').value }) });
        const out = new Image();
        out.onload = () => { c.getContext('2d').drawImage(out, 0, 0); c.dataset.made = String(+(c.dataset.made || 0) + 1); };
        out.src = 'data:image/png;base64,' + r.image;
        use.checked = true; row.classList.add('enabled');
      } catch (e) { showError(e.message); }
    });
    box.appendChild(row);
  }
}

function controlRequest() {
  return [...document.querySelectorAll('.control-row')].filter(row => row.querySelector('.use-control').checked).map(row => ({
    name: row.dataset.name, image: row.querySelector('.control-canvas').toDataURL('image/png'), scale: +row.querySelector('.control-scale').value }));
}

// ---- generation
function request() {
  const m = currentModel();
  const r = { model: m.name, sampler_name: $('sampler').value, steps: +$('steps').value, cfg_scale: +$('cfg').value,
    seed: $('random-seed').checked ? -1 : +$('seed').value, batch_size: +$('batch').value };
  if (m.kind === 'pixel') {
    r.prompt = $('class').value; r.trajectory = $('trajectory').checked;
    if ($('interp').checked) { r.seed2 = +$('seed2').value; r.mix = +$('mix').value; }
  } else {
    r.prompt = $('prompt').value; r.negative_prompt = $('negative').value; r.width = +$('width').value; r.height = +$('height').value;
    r.mode = $('mode').value;
    if (r.mode !== 'txt2img') { r.init_image = $('init-canvas').toDataURL('image/png'); r.denoising_strength = +$('strength').value; }
    if (r.mode === 'inpaint') r.mask = $('mask-canvas').toDataURL('image/png');
    if (m.controlnets > 0) { const nets = controlRequest(); if (nets.length) r.controlnets = nets; }
  }
  return r;
}

async function generate() {
  showError('');
  try {
    const accepted = await getJson('/api/jobs', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(request()) });
    follow(accepted.id);
  } catch (e) { showError(e.message); }
}

function follow(id) {
  job = id; $('generate').disabled = true; $('cancel').disabled = false; $('progress').textContent = 'queued';
  $('trajectory-image').hidden = true;
  events = new EventSource(`/api/jobs/${id}/events`);
  events.addEventListener('progress', e => {
    const { status, preview } = JSON.parse(e.data);
    showProgress(status);
    if (preview) { $('preview').src = preview; $('preview').dataset.count = String(++previewCount); }
  });
  events.addEventListener('done', e => { finish(JSON.parse(e.data)); });
  events.onerror = () => { if (job === id) { showError('lost the connection to the server'); finish(null); } };
}

function showProgress(s) {
  if (s.state === 'queued') { $('progress').textContent = 'queued'; return; }
  const done = s.batch * s.steps + s.step, total = Math.max(1, s.steps * s.batches);
  $('bar').style.width = `${100 * done / total}%`;
  const batch = s.batches > 1 ? ` · batch ${s.batch + 1}/${s.batches}` : '';
  $('progress').textContent = `step ${s.step}/${s.steps}${batch} · ${s.steps_per_second.toFixed(1)} it/s · ${s.eta.toFixed(1)} s left · ${s.elapsed.toFixed(1)} s`;
}

function finish(s) {
  if (events) { events.close(); events = null; }
  job = null; $('generate').disabled = false; $('cancel').disabled = true;
  if (!s) return;
  document.body.dataset.lastState = s.state;
  $('progress').textContent = s.state === 'done' ? `done in ${s.elapsed.toFixed(1)} s (${s.steps_per_second.toFixed(1)} it/s)` : s.state === 'cancelled' ? 'cancelled' : `failed: ${s.error}`;
  if (s.state === 'failed') showError(s.error);
  if (s.warnings?.length) showError(s.warnings.join('; '));
  $('results').innerHTML = '';
  for (const img of s.images || []) $('results').appendChild(thumb(img));
  if (s.images?.length) $('preview').src = s.images[0].url;
  if (s.trajectory) { $('trajectory-image').src = s.trajectory; $('trajectory-image').hidden = false; }
  loadGallery();
}

$('generate').addEventListener('click', generate);
$('cancel').addEventListener('click', async () => { if (job) await fetch(`/api/jobs/${job}/cancel`, { method: 'POST' }); });

// ---- gallery: click an image to reuse its parameters (read from its sd-webui "parameters" text)
function thumb(img) {
  const el = document.createElement('img');
  el.src = img.url; el.title = img.parameters; el.dataset.parameters = img.parameters; el.dataset.model = img.model;
  el.addEventListener('click', () => reuse(img.parameters));
  return el;
}

async function loadGallery() {
  const items = await getJson('/api/gallery');
  const g = $('gallery'); g.innerHTML = '';
  for (const img of items) g.appendChild(thumb(img));
}

// the settings line's "key: value" parts, split at ", " outside quotes (a ControlNet entry is one quoted value)
function settingParts(line) {
  const parts = []; let cur = '', quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (ch === '"') quoted = !quoted;
    if (!quoted && line.startsWith(', ', i)) { parts.push(cur); cur = ''; i++; continue; }
    cur += ch;
  }
  parts.push(cur);
  return parts;
}

function parseParameters(text) {
  const lines = text.split('\n'), settings = {}, out = { prompt: '', negative: '' };
  for (const part of settingParts(lines[lines.length - 1])) {
    const i = part.indexOf(': ');
    if (i > 0) settings[part.slice(0, i)] = part.slice(i + 2);
  }
  out.prompt = lines[0];
  const neg = lines.find(l => l.startsWith('Negative prompt: '));
  if (neg) out.negative = neg.slice('Negative prompt: '.length);
  return Object.assign(out, { settings });
}

function reuse(text) {
  const p = parseParameters(text), s = p.settings;
  if (s.Model && models.some(m => m.name === s.Model)) { $('model').value = s.Model; modelChanged(); }
  const m = currentModel();
  if (m.kind === 'pixel') $('class').value = m.classes.find(c => c.toLowerCase() === p.prompt.toLowerCase()) ?? '';
  else { $('prompt').value = p.prompt; $('negative').value = p.negative; }
  if (s.Steps) $('steps').value = s.Steps;
  if (s.Sampler) $('sampler').value = s.Sampler;
  if (s['CFG scale']) $('cfg').value = s['CFG scale'];
  if (s.Seed) { $('seed').value = s.Seed; $('random-seed').checked = false; }
  if (s.Size && m.kind === 'pipeline') { const [w, h] = s.Size.split('x'); $('width').value = w; $('height').value = h; }
  if (s.Seed2) { $('interp').checked = true; $('seed2').value = s.Seed2; $('mix').value = s.Mix; $('mix-value').textContent = s.Mix; }
  else $('interp').checked = false;
  document.body.dataset.reused = String(+(document.body.dataset.reused || 0) + 1);
}

function showError(text) { $('error').textContent = text; }
function esc(s) { return String(s).replace(/[&<>"']/g, c => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c])); }

// ---- training dashboard
let runTimer = null;
async function loadRuns() {
  const runs = await getJson('/api/runs/');
  const sel = $('runs'), keep = sel.value;
  sel.innerHTML = runs.map(r => `<option value="${esc(r.name)}">${esc(r.name)} (step ${r.last_step})</option>`).join('');
  if (keep && runs.some(r => r.name === keep)) sel.value = keep;
  await showRun();
  clearInterval(runTimer);
  runTimer = setInterval(() => { if (!$('page-dashboard').hidden) showRun(); }, 2000);    // train writes in another process
}
$('runs').addEventListener('change', showRun);

async function showRun() {
  const name = $('runs').value;
  if (!name) { $('run-stats').textContent = 'no runs with a log.jsonl in the runs folder'; return; }
  const run = await getJson(`/api/runs/${encodeURIComponent(name)}`);
  const last = run.log[run.log.length - 1] || {};
  const fmt = (v, d = 4) => v == null ? '–' : Number(v).toPrecision(d);
  $('run-stats').innerHTML = `<div>step <b id="run-step">${last.step ?? 0}</b>${run.total_steps ? ` of ${run.total_steps}` : ''}</div>`
    + `<div>loss ${fmt(last.loss)} · lr ${fmt(last.lr, 3)}</div>`
    + `<div>${run.steps_per_second ? run.steps_per_second.toFixed(2) + ' steps/s' : ''}${run.eta_seconds != null ? ' · ' + time(run.eta_seconds) + ' left' : ''}</div>`;
  chart($('loss-chart'), run.log, ['loss', 'loss_q0', 'loss_q1', 'loss_q2', 'loss_q3'], true);
  chart($('lr-chart'), run.log, ['lr'], false);
  $('loss-chart').dataset.points = String(run.log.length);
  const s = $('run-samples');
  if (s.dataset.count !== String(run.samples.length)) {
    s.innerHTML = run.samples.slice().reverse().map(x => `<figure><img src="${x.url}" alt="step ${x.step}"><figcaption>step ${x.step}</figcaption></figure>`).join('');
    s.dataset.count = String(run.samples.length);
  }
}

function time(sec) { const h = Math.floor(sec / 3600), m = Math.floor(sec % 3600 / 60), s = Math.round(sec % 60); return h ? `${h} h ${m} min` : m ? `${m} min ${s} s` : `${s} s`; }

const colors = { loss: '#ffffff', loss_q0: '#ff6b6b', loss_q1: '#ffa94d', loss_q2: '#69db7c', loss_q3: '#4dabf7', lr: '#b197fc' };
function chart(canvas, log, keys, logScale) {
  const g = canvas.getContext('2d'), W = canvas.width, H = canvas.height, pad = 36;
  g.clearRect(0, 0, W, H);
  const pts = log.filter(r => typeof r.step === 'number');
  if (!pts.length) return;
  const ys = pts.flatMap(r => keys.map(k => r[k]).filter(v => typeof v === 'number' && (!logScale || v > 0)));
  if (!ys.length) return;
  const f = v => logScale ? Math.log10(v) : v;
  let lo = Math.min(...ys.map(f)), hi = Math.max(...ys.map(f)); if (hi === lo) { hi += 1; lo -= 1; }
  const x0 = pts[0].step, x1 = Math.max(x0 + 1, pts[pts.length - 1].step);
  const X = s => pad + (W - pad - 8) * (s - x0) / (x1 - x0), Y = v => H - pad / 2 - (H - pad) * (f(v) - lo) / (hi - lo);
  g.fillStyle = '#889'; g.font = '11px sans-serif';
  g.fillText((logScale ? 10 ** hi : hi).toPrecision(3), 2, 12); g.fillText((logScale ? 10 ** lo : lo).toPrecision(3), 2, H - pad / 2);
  g.fillText(`step ${x1}`, W - 80, H - 4);
  keys.forEach((k, i) => {
    g.strokeStyle = colors[k]; g.lineWidth = k === 'loss' ? 2 : 1; g.beginPath();
    let started = false;
    for (const r of pts) { const v = r[k]; if (typeof v !== 'number' || (logScale && v <= 0)) continue; started ? g.lineTo(X(r.step), Y(v)) : g.moveTo(X(r.step), Y(v)); started = true; }
    g.stroke();
    g.fillStyle = colors[k]; g.fillText(k, pad + 8 + i * 64, 12);
  });
}

init().catch(e => showError(e.message));
