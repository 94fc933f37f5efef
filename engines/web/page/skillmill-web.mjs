// The page side of skillmill's browser engine: ONNX Runtime Web sessions keyed by id, tensors
// crossing to and from Python as base64 bytes.  The same module drives the exported web bundle
// (generate-skills export --target web), whose index.html calls it on the example inputs.
import * as ort from "./ort/ort.all.min.mjs";

ort.env.wasm.wasmPaths = new URL("./ort/", import.meta.url).href;
ort.env.logLevel = "warning";

const sessions = new Map();
const ARRAYS = {
  float32: Float32Array, float64: Float64Array, int64: BigInt64Array, int32: Int32Array,
  int16: Int16Array, int8: Int8Array, uint8: Uint8Array, bool: Uint8Array,
};

function toBase64(view) {
  const bytes = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}

function fromBase64(type, text) {
  const raw = atob(text);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  const Array = ARRAYS[type];
  if (!Array) throw new Error(`no typed array for ${type}`);
  return new Array(bytes.buffer);
}

function describe(error) {
  return error && error.name && error.message ? `${error.name}: ${error.message}` : String(error);
}

// What this browser offers each execution provider, in its own words when it refuses.
export async function environment() {
  const found = {
    userAgent: navigator.userAgent, crossOriginIsolated: self.crossOriginIsolated,
    hardwareConcurrency: navigator.hardwareConcurrency, ort: ort.env.versions,
    wasm: { available: typeof WebAssembly === "object", threads: self.crossOriginIsolated },
  };
  if (!navigator.gpu) {
    found.webgpu = { available: false, reason: "navigator.gpu is undefined (no WebGPU in this browser)" };
  } else {
    try {
      const adapter = await navigator.gpu.requestAdapter();
      if (!adapter) {
        found.webgpu = { available: false, reason: "navigator.gpu.requestAdapter() returned null" };
      } else {
        const info = adapter.info || {};
        found.webgpu = { available: true, vendor: info.vendor || "", architecture: info.architecture || "",
                         description: info.description || "", fallback: !!adapter.isFallbackAdapter };
      }
    } catch (error) {
      found.webgpu = { available: false, reason: `navigator.gpu.requestAdapter(): ${describe(error)}` };
    }
  }
  if (!navigator.ml) {
    found.webnn = { available: false, reason: "navigator.ml is undefined (no WebNN in this browser)" };
  } else {
    try {
      await navigator.ml.createContext();
      found.webnn = { available: true };
    } catch (error) {
      found.webnn = { available: false, reason: `navigator.ml.createContext(): ${describe(error)}` };
    }
  }
  return found;
}

// Open a session on one execution provider only: ORT Web would otherwise move on to the next
// provider in the list, and the caller must know which one ran.
export async function open(id, url, provider, threads) {
  if (threads) ort.env.wasm.numThreads = threads;
  const started = performance.now();
  const options = { executionProviders: [provider], graphOptimizationLevel: "all",
                    logSeverityLevel: 0, logVerbosityLevel: 0 };
  // ORT's verbose log says how many nodes it placed on each provider ("Node(s) placed on
  // [JsExecutionProvider]. Number of nodes: 94"); the Python side reads it from the console.
  const level = ort.env.logLevel;
  ort.env.logLevel = "verbose";
  let session;
  try {
    session = await ort.InferenceSession.create(url, options);
  } finally {
    ort.env.logLevel = level;
  }
  sessions.set(id, session);
  return { inputs: session.inputNames, outputs: session.outputNames,
           ms: performance.now() - started, threads: ort.env.wasm.numThreads };
}

export async function run(id, feeds) {
  const session = sessions.get(id);
  if (!session) throw new Error(`no session ${id} in this page`);
  const tensors = {};
  for (const [name, value] of Object.entries(feeds)) {
    tensors[name] = new ort.Tensor(value.type, fromBase64(value.type, value.data), value.dims);
  }
  const started = performance.now();
  const results = await session.run(tensors);
  const ms = performance.now() - started;
  const outputs = {};
  for (const [name, tensor] of Object.entries(results)) {
    outputs[name] = { type: tensor.type, dims: Array.from(tensor.dims), data: toBase64(tensor.data) };
    tensor.dispose();
  }
  return { outputs, ms };
}

export async function close(id) {
  const session = sessions.get(id);
  sessions.delete(id);
  if (session) await session.release();
}

export { ort };
