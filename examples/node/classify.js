#!/usr/bin/env node
// Classify image files with a resnet-deploy model made with --image-input, in Node.js.
//
//   node classify.js MODEL.onnx IMAGE.jpg [IMAGE.png ...] [--top-k 5] [--json]
//
// The model takes uint8 RGB [N, H, W, 3] of any size and does the resize, crop and
// normalisation itself, so this program only decodes: JPEG with jpeg-js, PNG with pngjs (both
// pure JavaScript), EXIF orientation applied and every PNG colour type made RGB as resnet-deploy's
// Predictor does (alpha dropped, 16-bit scaled to 8). The class names come from the model's
// metadata ("labels"), read from the ONNX file itself: onnxruntime's JavaScript API does not
// expose metadata_props.
//
// The file's metadata is data, never behaviour: it is read into objects without a prototype (a
// key "__proto__" is a key like any other), the labels must be strings, one per class, and text
// from the file is printed with its control characters escaped (a label "\x1b]0;TITLE" would
// otherwise retitle the terminal).
'use strict';

const fs = require('fs');
const path = require('path');
const ort = require('onnxruntime-node');
const jpeg = require('jpeg-js');
const { PNG } = require('pngjs');

const MAX_PIXELS = 89478485; // PIL's decompression-bomb limit, as resnet-deploy's predict

class UsageError extends Error {}

const USAGE = 'usage: node classify.js MODEL.onnx IMAGE [IMAGE ...] [--top-k K] [--json]';
const HELP = `${USAGE}

Classify JPEG and PNG files with a resnet-deploy model exported with --image-input.
  --top-k K, -k K  how many classes to show per image (default 5)
  --json           print JSON: [{image, size, top_k: [{index, label, score}], logits}]
  --help, -h       show this help`;

function parseArgs(argv) {
  const args = { topK: 5, json: false, files: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--help' || a === '-h') args.help = true;
    else if (a === '--json') args.json = true;
    else if (a === '--top-k' || a === '-k') {
      args.topK = Number(argv[++i]);
      if (!Number.isInteger(args.topK) || args.topK < 1) throw new UsageError(`--top-k takes a whole number >= 1, received ${argv[i]}`);
    } else if (a.startsWith('-')) throw new UsageError(`unknown option ${a}`);
    else args.files.push(a);
  }
  if (args.help) return args;
  if (args.files.length < 2) throw new UsageError(USAGE);
  args.model = args.files.shift();
  return args;
}

// -- ONNX metadata: ModelProto field 14, metadata_props {key = 1, value = 2}, read from the wire format
function readVarint(buf, pos) {
  let value = 0;
  let shift = 1;
  for (;;) {
    if (pos >= buf.length) throw new Error('truncated varint');
    const byte = buf[pos++];
    value += (byte & 0x7f) * shift;
    if (byte < 0x80) return [value, pos];
    shift *= 128;
  }
}

function fields(buf, start, end, onField) {
  let pos = start;
  while (pos < end) {
    let key;
    [key, pos] = readVarint(buf, pos);
    const field = Math.floor(key / 8);
    const wire = key & 7;
    if (wire === 0) [, pos] = readVarint(buf, pos);
    else if (wire === 1) pos += 8;
    else if (wire === 5) pos += 4;
    else if (wire === 2) {
      let length;
      [length, pos] = readVarint(buf, pos);
      onField(field, pos, pos + length);
      pos += length;
    } else throw new Error(`unsupported protobuf wire type ${wire}`);
  }
}

// JSON objects without a prototype: `__proto__`, `constructor` and `toString` are plain keys.
function plainData(key, value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? Object.assign(Object.create(null), value) : value;
}

function readMetadata(modelPath) {
  const buf = fs.readFileSync(modelPath);
  const metadata = Object.create(null);
  fields(buf, 0, buf.length, (field, start, end) => {
    if (field !== 14) return;
    let key = '';
    let text = '';
    fields(buf, start, end, (f, s, e) => {
      if (f === 1) key = buf.toString('utf8', s, e);
      else if (f === 2) text = buf.toString('utf8', s, e);
    });
    let value = text;
    try { value = JSON.parse(text, plainData); } catch (_) { /* a plain string */ }
    metadata[key] = value;
  });
  return metadata;
}

// The class names, one string per class, or null when the model has none.
function readLabels(metadata, classes, modelPath) {
  if (!Object.hasOwn(metadata, 'labels')) return null;
  const labels = metadata.labels;
  if (!Array.isArray(labels) || labels.length === 0 || !labels.every((l) => typeof l === 'string')) {
    throw new UsageError(`${modelPath}: metadata 'labels' must be a non-empty list of names`);
  }
  if (labels.length !== classes) {
    throw new UsageError(`${modelPath}: metadata 'labels' has ${labels.length} names for ${classes} classes`);
  }
  return labels;
}

// Text from a file, fit for a terminal: C0 and C1 controls, DEL and the invisible direction and
// line controls as the escapes that name them (\x1b, \u202e), as resnet-deploy's own commands show them.
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/g;
const NAMED = { '\t': '\\t', '\n': '\\n', '\r': '\\r' };
function shown(text) {
  return String(text).replace(CONTROL, (c) => NAMED[c]
    ?? (c.charCodeAt(0) < 0x100 ? `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}` : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`));
}

// -- decoding ---------------------------------------------------------------------------------
function exifOrientation(buf) {
  // JPEG APP1 "Exif\0\0" -> TIFF header -> IFD0 tag 0x0112 (Orientation).
  let pos = 2;
  while (pos + 4 <= buf.length && buf[pos] === 0xff) {
    const marker = buf[pos + 1];
    const length = buf.readUInt16BE(pos + 2);
    if (marker === 0xe1 && buf.toString('latin1', pos + 4, pos + 10) === 'Exif\0\0') {
      const tiff = pos + 10;
      const little = buf.toString('latin1', tiff, tiff + 2) === 'II';
      const u16 = (o) => (little ? buf.readUInt16LE(o) : buf.readUInt16BE(o));
      const u32 = (o) => (little ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
      const ifd = tiff + u32(tiff + 4);
      for (let i = 0, n = u16(ifd); i < n; i++) {
        const entry = ifd + 2 + i * 12;
        if (u16(entry) === 0x0112) return u16(entry + 8);
      }
      return 1;
    }
    if (marker === 0xda) break; // start of scan: no EXIF before the image data
    pos += 2 + length;
  }
  return 1;
}

// PIL's ImageOps.exif_transpose: orientation 2..8 -> the transposition that makes the image upright.
function orient(rgb, width, height, orientation) {
  if (orientation < 2 || orientation > 8) return { data: rgb, width, height };
  const swap = orientation >= 5;
  const w = swap ? height : width;
  const h = swap ? width : height;
  const out = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let sx;
      let sy;
      switch (orientation) {
        case 2: sx = width - 1 - x; sy = y; break;               // mirror left-right
        case 3: sx = width - 1 - x; sy = height - 1 - y; break;  // rotate 180
        case 4: sx = x; sy = height - 1 - y; break;              // mirror top-bottom
        case 5: sx = y; sy = x; break;                           // transpose
        case 6: sx = y; sy = height - 1 - x; break;              // rotate 90 clockwise to view
        case 7: sx = width - 1 - y; sy = height - 1 - x; break;  // transverse
        default: sx = width - 1 - y; sy = x; break;              // 8: rotate 90 counter-clockwise
      }
      const s = (sy * width + sx) * 3;
      const d = (y * w + x) * 3;
      out[d] = rgb[s]; out[d + 1] = rgb[s + 1]; out[d + 2] = rgb[s + 2];
    }
  }
  return { data: out, width: w, height: h };
}

function rgbaToRgb(rgba, pixels) {
  const rgb = new Uint8Array(pixels * 3);
  for (let i = 0; i < pixels; i++) {
    rgb[i * 3] = rgba[i * 4]; rgb[i * 3 + 1] = rgba[i * 4 + 1]; rgb[i * 3 + 2] = rgba[i * 4 + 2];
  }
  return rgb;
}

// A PNG's size from its header (IHDR, the first chunk), before any pixel is decompressed: an
// 875 KB file can hold 30000x30000 pixels that pngjs would decode (52 s, 6 GB) before a check after.
function pngSize(buf, file) {
  if (buf.length < 24 || buf.toString('latin1', 12, 16) !== 'IHDR') throw new UsageError(`not a readable PNG file: ${file}`);
  return { width: buf.readUInt32BE(16), height: buf.readUInt32BE(20) };
}

function decode(file, resize = 1) {
  const buf = fs.readFileSync(file);
  if (buf.length >= 8 && buf.readUInt32BE(0) === 0x89504e47) {
    checkSize(pngSize(buf, file), file, resize);
    const png = PNG.sync.read(buf); // every colour type and bit depth -> 8-bit RGBA; alpha is dropped below
    return { data: rgbaToRgb(png.data, png.width * png.height), width: png.width, height: png.height };
  }
  if (buf.length >= 3 && buf[0] === 0xff && buf[1] === 0xd8) {
    const img = jpeg.decode(buf, { useTArray: true, formatAsRGBA: true, maxResolutionInMP: MAX_PIXELS / 1e6 });
    return orient(rgbaToRgb(img.data, img.width * img.height), img.width, img.height, exifOrientation(buf));
  }
  throw new UsageError(`not a JPEG or PNG file: ${file}`);
}

function checkSize(image, file, resize) {
  const { width, height } = image;
  if (width < 1 || height < 1) throw new UsageError(`refused ${file}: a ${width}x${height} image has no pixels`);
  if (width * height > MAX_PIXELS) throw new UsageError(`refused ${file}: more than ${MAX_PIXELS} pixels`);
  const short = Math.min(width, height);
  const long = Math.max(width, height);
  const resized = resize * Math.floor((resize * long) / short);
  if (resized > MAX_PIXELS) throw new UsageError(`refused ${file}: a ${width}x${height} image would be resized beyond ${MAX_PIXELS} pixels`);
}

// -- classification ---------------------------------------------------------------------------
function topK(logits, k, labels) {
  const max = Math.max(...logits);
  const exp = logits.map((v) => Math.exp(v - max));
  const sum = exp.reduce((a, b) => a + b, 0);
  const order = [...logits.keys()].sort((a, b) => logits[b] - logits[a] || a - b);
  return order.slice(0, Math.min(k, logits.length)).map((i) => ({ index: i, label: labels ? String(labels[i]) : String(i), score: exp[i] / sum }));
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  if (args.help) {
    process.stdout.write(`${HELP}\n`);
    return;
  }
  const metadata = readMetadata(args.model);
  if (metadata.input_format !== 'uint8 RGB NHWC, any size') {
    throw new UsageError(`${args.model} does not take images as they are (metadata input_format is ${JSON.stringify(metadata.input_format)}); export it with --image-input`);
  }
  if (String(metadata.weights ?? '').startsWith('random init')) { // export without --weights records this, as predict warns
    process.stderr.write(`warning: ${shown(path.basename(args.model))} holds the seeded random initialisation, not trained weights: `
      + 'its answers mean nothing (export it with --weights CHECKPOINT)\n');
  }
  const session = await ort.InferenceSession.create(args.model);
  const inputName = session.inputNames[0];
  const logitsName = session.outputNames[0];
  const results = [];
  let labels; // read once the model has said how many classes it has
  for (const file of args.files) {
    const image = decode(file, Number(metadata.resize_size) || 1);
    checkSize(image, file, Number(metadata.resize_size) || 1);
    const tensor = new ort.Tensor('uint8', image.data, [1, image.height, image.width, 3]);
    const output = await session.run({ [inputName]: tensor }, [logitsName]);
    const logits = Array.from(output[logitsName].data);
    if (labels === undefined) labels = readLabels(metadata, logits.length, args.model);
    results.push({ image: file, size: [image.width, image.height], top_k: topK(logits, args.topK, labels), logits });
  }
  if (args.json) {
    process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
    return;
  }
  for (const r of results) {
    console.log(`${shown(r.image)} (${r.size[0]}x${r.size[1]})`);
    r.top_k.forEach((p, rank) => console.log(`  ${rank + 1}. ${shown(p.label)} (${p.index})  ${p.score.toFixed(4)}`));
  }
}

if (require.main === module) {
  main().catch((err) => {
    // One line, non-zero exit, as resnet-deploy's own commands.
    const message = err instanceof UsageError ? err.message : `${err.name}: ${String(err.message).split('\n')[0]}`;
    process.stderr.write(`error: ${shown(message)}\n`);
    process.exit(1);
  });
}

module.exports = { readMetadata, readLabels, shown, decode, topK };
