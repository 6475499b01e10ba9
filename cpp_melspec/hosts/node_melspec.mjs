// Second host for melspec.wasm: Node.js with its built-in WASI (node:wasi), no preopens, env or args.
// Usage: node node_melspec.mjs MODULE.wasm SPEC.json IN.f32 OUT.f32
//   SPEC.json: the FeatureSpec fields (feature_spec.json); IN.f32: raw little-endian float32 samples;
//   OUT.f32 receives the float32 dB spectrogram, n_mels x n_frames row-major. Prints n_frames.
import { readFileSync, writeFileSync } from "node:fs";
import { WASI } from "node:wasi";

const [wasmPath, specPath, inPath, outPath] = process.argv.slice(2);
if (!outPath) {
  console.error("usage: node node_melspec.mjs MODULE.wasm SPEC.json IN.f32 OUT.f32");
  process.exit(2);
}
const spec = JSON.parse(readFileSync(specPath, "utf8"));
const wasi = new WASI({ version: "preview1", args: [], env: {}, preopens: {} });
const module = await WebAssembly.compile(readFileSync(wasmPath));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
wasi.initialize(instance);
const ex = instance.exports;

function lastError() {
  const ptr = ex.melspec_last_error();
  const bytes = new Uint8Array(ex.memory.buffer, ptr, 512);
  const end = bytes.indexOf(0);
  return new TextDecoder().decode(bytes.subarray(0, end < 0 ? 512 : end));
}

if (ex.melspec_abi_version() !== 1) {
  console.error(`${wasmPath}: ABI version ${ex.melspec_abi_version()}, this host speaks 1`);
  process.exit(1);
}
const handle = ex.melspec_create(
  spec.sample_rate_hz, spec.n_fft, spec.hop_length, spec.win_length, { hann: 0 }[spec.window],
  spec.center ? 1 : 0, { constant: 0, reflect: 1 }[spec.pad_mode], spec.n_mels, spec.fmin_hz, spec.fmax_hz,
  spec.power, spec.htk ? 1 : 0, spec.mel_norm === "slaney" ? 1 : 0, spec.db_ref, spec.db_amin,
  spec.top_db === null ? -1.0 : spec.top_db,
);
if (handle <= 0) {
  console.error(`melspec_create: ${lastError()}`);
  process.exit(1);
}
const raw = readFileSync(inPath);
const samples = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
const inPtr = ex.melspec_input(handle, samples.length);
if (inPtr === 0) {
  console.error(`melspec_input: ${lastError()}`);
  process.exit(1);
}
new Float32Array(ex.memory.buffer, inPtr, samples.length).set(samples);
const nFrames = ex.melspec_compute(handle, samples.length);
if (nFrames <= 0) {
  console.error(`melspec_compute: ${lastError()}`);
  process.exit(1);
}
const outPtr = ex.melspec_output(handle);
const out = new Float32Array(ex.memory.buffer, outPtr, spec.n_mels * nFrames);
writeFileSync(outPath, Buffer.from(out.buffer, out.byteOffset, out.byteLength));
ex.melspec_destroy(handle);
console.log(nFrames);
