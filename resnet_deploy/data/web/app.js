// Classify an image in the browser with a resnet-deploy --image-input model (onnxruntime-web).
//
// The model takes uint8 RGB [N, H, W, 3] of any size and resizes, crops and normalises inside its
// graph, so this page only decodes: the browser's own JPEG/PNG decoder (createImageBitmap, EXIF
// orientation applied, no colour-profile conversion: PIL applies none either), the pixels read
// back from a canvas. `resnet-deploy bundle MODEL --web -o DIR` writes this page beside the model,
// model.json (labels, preprocessing, the file to load) and onnxruntime-web's WebAssembly files.
//
// Query parameters, for automated checks and the benchmark (benchmarks/image_input.py):
//   ?threads=N              WebAssembly threads (default: model.json's, else every core when the
//                           page is cross-origin isolated, else 1: threads need SharedArrayBuffer)
//   ?images=a.png,b.jpg     classify these files of this site, one after the other, on load
//   ?report=/path           POST the results as JSON to this path of this site (same origin only)
//   ?bench=N&warmup=W       then time W + N more runs of the first image (decoding and inference)
import * as ort from './ort/ort.wasm.min.mjs';

const MAX_PIXELS = 89478485; // PIL's decompression-bomb limit, as resnet-deploy's predict
const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);

class UsageError extends Error {}

function positiveInt(name, fallback, max = Number.MAX_SAFE_INTEGER) {
  const raw = params.get(name);
  if (raw === null) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new UsageError(`?${name}= takes a whole number from 0 to ${max}, received ${raw}`);
  }
  return value;
}

const MAX_THREADS = 64;  // beyond any browser's thread pool; a larger number only fails later, less clearly

function sameOrigin(path) {
  const url = new URL(path, location.href);
  if (url.origin !== location.origin) throw new UsageError(`${path} is not on this site; only same-origin paths are fetched or posted to`);
  return url;
}

// -- decoding ---------------------------------------------------------------------------------
async function decode(blob, resize) {
  // 'none': the pixels as stored, as PIL reads them (no ICC/gamma conversion, no premultiplied alpha).
  let bitmap;
  try {
    bitmap = await createImageBitmap(blob, { colorSpaceConversion: 'none', premultiplyAlpha: 'none', imageOrientation: 'from-image' });
  } catch (err) {
    throw new UsageError(`not an image this browser decodes (${blob.type || 'unknown type'}, ${blob.size} bytes)`);
  }
  const { width, height } = bitmap;
  checkSize(width, height, resize);
  const canvas = new OffscreenCanvas(width, height);
  const context = canvas.getContext('2d', { willReadFrequently: true });
  context.drawImage(bitmap, 0, 0);
  bitmap.close();
  const rgba = context.getImageData(0, 0, width, height).data;
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) { // alpha dropped, as resnet-deploy's Predictor drops it
    rgb[j] = rgba[i]; rgb[j + 1] = rgba[i + 1]; rgb[j + 2] = rgba[i + 2];
  }
  return { data: rgb, width, height };
}

function checkSize(width, height, resize) {
  if (width < 1 || height < 1) throw new UsageError(`a ${width}x${height} image has no pixels`);
  if (width * height > MAX_PIXELS) throw new UsageError(`a ${width}x${height} image has more than ${MAX_PIXELS} pixels`);
  const short = Math.min(width, height);
  const resized = resize * Math.floor((resize * Math.max(width, height)) / short);
  if (resized > MAX_PIXELS) throw new UsageError(`a ${width}x${height} image would be resized beyond ${MAX_PIXELS} pixels`);
}

// -- classification ---------------------------------------------------------------------------
function topK(logits, k, labels) {
  let max = -Infinity;
  for (const v of logits) max = Math.max(max, v);
  const exp = Array.from(logits, (v) => Math.exp(v - max));
  const sum = exp.reduce((a, b) => a + b, 0);
  const order = [...logits.keys()].sort((a, b) => logits[b] - logits[a] || a - b);
  return order.slice(0, Math.min(k, logits.length)).map((i) => ({ index: i, label: labels ? String(labels[i]) : String(i), score: exp[i] / sum }));
}

async function classify(session, config, blob) {
  const t0 = performance.now();
  const image = await decode(blob, config.resize_size || 1);
  const t1 = performance.now();
  const tensor = new ort.Tensor('uint8', image.data, [1, image.height, image.width, 3]);
  const output = await session.run({ [config.input]: tensor }, [config.output]);
  const t2 = performance.now();
  const logits = output[config.output].data;
  return { size: [image.width, image.height], top_k: topK(logits, 5, config.labels), logits: Array.from(logits),
           decode_ms: t1 - t0, run_ms: t2 - t1, image };
}

async function bench(session, config, blob, runs, warmup) {
  const decodeMs = [];
  const runMs = [];
  for (let i = 0; i < warmup + runs; i++) {
    const r = await classify(session, config, blob);
    if (i >= warmup) { decodeMs.push(r.decode_ms); runMs.push(r.run_ms); }
  }
  return { decode_ms: decodeMs, run_ms: runMs };
}

// -- the page ---------------------------------------------------------------------------------
// A label is shown at most this long, the rest cut to an ellipsis: a model's label of 2 MB filled
// the page. bundle writes none longer into model.json; a model.json written otherwise may hold one.
const MAX_LABEL_CHARS = 200;

function shown(label) {
  if (label.length <= MAX_LABEL_CHARS) return label;
  let cut = MAX_LABEL_CHARS - 1;
  if (/[\uD800-\uDBFF]/.test(label[cut - 1])) cut -= 1;  // not between the halves of a surrogate pair
  return `${label.slice(0, cut)}\u2026`;
}

function show(result, blob) {
  $('preview').src = URL.createObjectURL(blob);
  const rows = result.top_k.map((p) => {
    const tr = document.createElement('tr');
    const label = document.createElement('td');
    label.textContent = shown(p.label);
    const bar = document.createElement('div');
    bar.className = 'bar';
    bar.style.width = `${Math.max(1, Math.round(p.score * 100))}%`;
    label.append(bar);
    const score = document.createElement('td');
    score.className = 'score';
    score.textContent = `${(p.score * 100).toFixed(1)} %`;
    tr.append(label, score);
    return tr;
  });
  $('top').replaceChildren(...rows);
  $('timing').textContent = `${result.size[0]}x${result.size[1]} px: inference ${result.run_ms.toFixed(1)} ms `
    + `(resize, crop and normalisation included), decoding ${result.decode_ms.toFixed(1)} ms`;
  $('result').hidden = false;
}

function status(text, error = false) {
  $('status').textContent = text;
  $('status').className = error ? 'error' : '';
}

async function post(report, body) {
  await fetch(report, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
}

async function main() {
  let report = null;
  try {
    report = params.get('report') === null ? null : sameOrigin(params.get('report'));  // a bad one is said below
    const config = await (await fetch('model.json')).json();
    const threads = positiveInt('threads', config.threads || (self.crossOriginIsolated ? navigator.hardwareConcurrency : 1),
                                MAX_THREADS);
    ort.env.wasm.numThreads = threads;
    const t0 = performance.now();
    const session = await ort.InferenceSession.create(config.model, { executionProviders: ['wasm'], graphOptimizationLevel: config.graph_optimization });
    const sessionMs = performance.now() - t0;
    // One run on a small image before the first real one: WebAssembly's first run allocates and
    // compiles what it has not yet (several times the steady time), which would be shown as the cost.
    await session.run({ [config.input]: new ort.Tensor('uint8', new Uint8Array(32 * 32 * 3), [1, 32, 32, 3]) }, [config.output]);
    const environment = { cross_origin_isolated: self.crossOriginIsolated, threads: ort.env.wasm.numThreads,
                          hardware_concurrency: navigator.hardwareConcurrency, onnxruntime_web: ort.env.versions.web,
                          user_agent: navigator.userAgent, model: config.model, precision: config.precision, session_ms: sessionMs };
    $('model').textContent = `${config.source} (${config.precision}, ${config.format.toUpperCase()} format) on onnxruntime-web `
      + `${ort.env.versions.web}, WebAssembly SIMD, ${environment.threads} thread${environment.threads === 1 ? '' : 's'}`
      + (self.crossOriginIsolated ? '' : ' (not cross-origin isolated: one thread)')
      + (String(config.weights).startsWith('random init') ? '. This model holds the seeded random initialisation, not trained weights: its answers mean nothing.' : '');

    const run = async (blob) => {
      status('classifying...');
      try {
        const result = await classify(session, config, blob);
        show(result, blob);
        status('Drop or choose another image.');
      } catch (err) {
        status(`error: ${err.message}`, true);
      }
    };
    $('file').addEventListener('change', (e) => e.target.files[0] && run(e.target.files[0]));
    const drop = $('drop');
    drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
    drop.addEventListener('dragleave', () => drop.classList.remove('over'));
    drop.addEventListener('drop', (e) => {
      e.preventDefault();
      drop.classList.remove('over');
      if (e.dataTransfer.files[0]) run(e.dataTransfer.files[0]);
    });

    const images = (params.get('images') || '').split(',').filter(Boolean);
    const results = [];
    let first = null;
    for (const name of images) {
      const response = await fetch(sameOrigin(name));
      if (!response.ok) throw new UsageError(`${name}: HTTP ${response.status}`);
      const blob = await response.blob();
      first = first || blob;
      let found;
      try {
        found = await classify(session, config, blob);
      } catch (err) {
        throw new UsageError(`${name}: ${err.message}`);
      }
      const { image, ...result } = found;
      results.push({ image: name, ...result });
      show(result, blob);
    }
    const runs = positiveInt('bench', 0);
    const timings = runs && first ? await bench(session, config, first, runs, positiveInt('warmup', 3)) : null;
    status(images.length ? `classified ${images.length} image${images.length === 1 ? '' : 's'}` : 'Ready.');
    if (report) await post(report, { ok: true, environment, results, bench: timings });
  } catch (err) {
    status(`error: ${err.message}`, true);
    if (report) await post(report, { ok: false, error: `${err.name}: ${String(err.message).split('\n')[0]}` });
  }
}

main();
