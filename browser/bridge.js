// The in-browser model: an OpenAI-shaped /v1 answered by wllama (llama.cpp in WebAssembly) in this worker.
//
// Python in the Pyodide kernel calls handle(method, url, headers, body[, signal]) for every request to
// http://in-browser.localhost/v1 and gets back a fetch Response in llama.cpp server's shapes: `chat.completion`
// with `usage`, or a stream of `chat.completion.chunk` server-sent events. One model answers one request at a
// time (a queue), and `usage` is computed here from llama.cpp's own counts, since wllama's stream carries none.
//
// Files beside this module (the site layout): ./model.gguf, ./wllama/ (the package's esm/ folder) and
// ./wllama-compat/ (the Asyncify build, for browsers without JSPI or Memory64). Nothing is fetched off the site.

import { Wllama, WllamaAbortError, WllamaRuntimeError } from './wllama/index.js';

export const MODEL_ID = 'SmolLM2-135M-Instruct';
const OWNER = 'akash-nb';
const N_CTX = 2048; // the lessons' longest conversation fits; the KV cache stays small (135M model)
// A request with no max_tokens gets this many at most. The native route's llama-server allows 512
// (akash_nb/_engine/llama_server.py DEFAULT_ANSWER_TOKENS), but here the model decodes 7-10 tokens/s on one thread:
// the guide's first call sets none, and its story ran to 512 tokens, over a minute with nothing on screen.
// 128 is about 15 s; the answer says finish_reason "length" when it stops here, and max_tokens asks more.
export const DEFAULT_ANSWER_TOKENS = 128;
const SEE_ALSO = 'use the replay route (AKASH_NB_PROVIDER=replay) or a real server for it';

const here = (path) => new URL(path, import.meta.url).href;
const MODEL_URL = here('./model.gguf');
const WASM_URL = here('./wllama/wasm/wllama.wasm');
const COMPAT = { wasm: here('./wllama-compat/wasm/wllama.wasm'), worker: here('./wllama-compat/wasm/wllama.js') };

// What the in-browser model cannot do, one sentence each: [is it asked for?, what to say].
const UNSUPPORTED = [
  [(r) => r.tools != null || r.tool_choice != null || r.functions != null || r.function_call != null,
    `The in-browser model cannot call tools; ${SEE_ALSO}.`],
  [(r) => r.n != null && r.n !== 1,
    `The in-browser model gives one choice per request (n must be 1); ${SEE_ALSO}.`],
  [(r) => r.logprobs === true || r.top_logprobs != null,
    `The in-browser model does not return log probabilities; ${SEE_ALSO}.`],
  [(r) => r.audio != null || (r.modalities != null && r.modalities.some((m) => m !== 'text')),
    `The in-browser model answers in text only; ${SEE_ALSO}.`],
];

// Request fields passed to llama.cpp as they are (it reads them as llama-server does).
const PASSED = ['temperature', 'top_p', 'seed', 'stop', 'presence_penalty', 'frequency_penalty', 'response_format'];

// HTTP status -> OpenAI error type.
const ERROR_TYPES = {
  400: 'invalid_request_error', 404: 'not_found_error', 405: 'invalid_request_error',
  500: 'server_error', 503: 'unavailable_error',
};

let wllama = null;
let loading = null; // the one load in flight (or done): a Promise
const progress = { loaded: 0, total: 0 };
const facts = { compat: false, threads: 1, loadSeconds: null, error: null }; // error: why the last load failed
let queueTail = Promise.resolve();

function needsCompat() {
  if (!('Suspending' in WebAssembly)) return true;
  try {
    new WebAssembly.Memory({ address: 'i64', initial: 1n });
    return false;
  } catch {
    return true;
  }
}

/** Where the model is: {loaded, loading, progress: {loaded, total}}, plus compat, threads, loadSeconds, error. */
export function status() {
  return {
    loaded: wllama !== null && wllama.isModelLoaded(),
    loading: loading !== null && !(wllama !== null && wllama.isModelLoaded()),
    progress: { ...progress },
    ...facts,
  };
}

/** Load the model once (later calls share the first); onProgress({loaded, total}) while it downloads. */
export async function load(onProgress) {
  if (loading === null) {
    facts.error = null;
    loading = start(onProgress).catch((problem) => {
      loading = null;
      wllama = null;
      facts.error = problem && problem.message ? problem.message : String(problem);
      throw problem;
    });
  }
  return loading;
}

async function start(onProgress) {
  const began = performance.now();
  const instance = new Wllama({ default: WASM_URL }, { suppressNativeLog: true, logger: quietLogger() });
  // wllama switches to these files itself when JSPI or Memory64 is missing ('firefox_safari': Firefox too).
  instance.setCompat(COMPAT, 'firefox_safari');
  facts.compat = needsCompat();
  // Without cross-origin isolation there is no SharedArrayBuffer, so one thread; with it, wllama's default.
  const threads = self.crossOriginIsolated ? undefined : 1;
  await instance.loadModelFromUrl(MODEL_URL, {
    n_ctx: N_CTX,
    n_threads: threads,
    n_gpu_layers: 0, // CPU: a 135M model gains little from WebGPU, and CPU behaves the same in every browser
    progressCallback: ({ loaded, total }) => {
      progress.loaded = loaded;
      progress.total = total;
      if (onProgress) onProgress({ loaded, total });
    },
  });
  const info = instance.getLoadedContextInfo();
  if (!(info.n_vocab > 0 && info.n_layer > 0)) {
    await instance.exit();
    await instance.cacheManager.delete(MODEL_URL); // so a reload downloads it again instead of reusing it
    throw new Error(`${MODEL_URL} is not a usable model (llama.cpp read ${info.n_vocab} tokens, ${info.n_layer} layers)`);
  }
  wllama = instance;
  facts.threads = instance.getNumThreads();
  facts.loadSeconds = (performance.now() - began) / 1000;
  return status();
}

function quietLogger() {
  return { debug: () => {}, log: () => {}, warn: console.warn, error: console.error };
}

/** Answer one request to the in-browser /v1 as a fetch Response (never throws). */
export async function handle(method, url, headers, body, signal) {
  try {
    const path = new URL(url).pathname.replace(/\/+$/, '');
    const verb = method.toUpperCase();
    if (path.endsWith('/v1/models')) {
      return verb === 'GET' ? json(200, modelList()) : methodNotAllowed(verb, path);
    }
    if (path.endsWith(`/v1/models/${MODEL_ID}`)) {
      return verb === 'GET' ? json(200, modelEntry()) : methodNotAllowed(verb, path);
    }
    if (path.endsWith('/v1/chat/completions')) {
      return verb === 'POST' ? await chatCompletions(body, signal) : methodNotAllowed(verb, path);
    }
    return error(404, `The in-browser model has no ${path}: it answers GET /v1/models and POST /v1/chat/completions.`);
  } catch (problem) {
    return error(500, `The in-browser model failed: ${problem && problem.message ? problem.message : problem}`);
  }
}

function modelEntry() {
  return { id: MODEL_ID, object: 'model', created: 0, owned_by: OWNER };
}

function modelList() {
  return { object: 'list', data: [modelEntry()] };
}

function methodNotAllowed(verb, path) {
  return error(405, `The in-browser model does not answer ${verb} ${path}.`);
}

function json(statusCode, payload) {
  return new Response(JSON.stringify(payload), {
    status: statusCode,
    headers: { 'content-type': 'application/json' },
  });
}

function error(statusCode, message) {
  return json(statusCode, { error: { message, type: ERROR_TYPES[statusCode] || 'server_error', code: statusCode } });
}

class BadRequest extends Error {}

/** The request as wllama takes it, or BadRequest with the sentence to answer. */
function parse(body) {
  let request;
  try {
    const text = body instanceof ArrayBuffer || ArrayBuffer.isView(body) ? new TextDecoder().decode(body) : body;
    request = JSON.parse(text ?? '');
  } catch {
    throw new BadRequest('The request body is not JSON: send a chat completion request as a JSON object.');
  }
  if (request === null || typeof request !== 'object' || Array.isArray(request)) {
    throw new BadRequest('The request body must be a JSON object.');
  }
  for (const [asked, sentence] of UNSUPPORTED) {
    if (asked(request)) throw new BadRequest(sentence);
  }
  const format = request.response_format;
  if (format != null && (typeof format !== 'object' || !['text', 'json_object', 'json_schema'].includes(format.type))) {
    throw new BadRequest(`The in-browser model does not know response_format ${JSON.stringify(format)}.`);
  }
  if (!Array.isArray(request.messages) || request.messages.length === 0) {
    throw new BadRequest('messages must be a non-empty list of {role, content}.');
  }
  const messages = request.messages.map(message);
  const maxTokens = request.max_completion_tokens ?? request.max_tokens;
  if (maxTokens != null && !(Number.isInteger(maxTokens) && maxTokens > 0)) {
    throw new BadRequest('max_tokens must be a whole number above 0.');
  }
  const options = { messages };
  for (const key of PASSED) if (request[key] != null) options[key] = request[key];
  options.max_tokens = maxTokens ?? DEFAULT_ANSWER_TOKENS;
  return {
    options,
    stream: request.stream === true,
    includeUsage: request.stream_options != null && request.stream_options.include_usage === true,
  };
}

function message(entry, index) {
  if (entry === null || typeof entry !== 'object') throw new BadRequest(`messages[${index}] must be an object.`);
  const { content } = entry;
  const role = entry.role === 'developer' ? 'system' : entry.role; // OpenAI's newer name for the system role
  if (!['system', 'user', 'assistant'].includes(role)) {
    throw new BadRequest(
      `messages[${index}] has role ${JSON.stringify(role)}: the in-browser model takes system, user and assistant; ${SEE_ALSO}.`,
    );
  }
  if (typeof content === 'string') return { role, content };
  if (Array.isArray(content) && content.every((part) => part && part.type === 'text' && typeof part.text === 'string')) {
    return { role, content: content.map((part) => part.text).join('') };
  }
  throw new BadRequest(
    `messages[${index}].content must be a string or a list of text parts: the in-browser model reads text only; ${SEE_ALSO}.`,
  );
}

async function chatCompletions(body, signal) {
  let parsed;
  try {
    parsed = parse(body);
  } catch (problem) {
    if (problem instanceof BadRequest) return error(400, problem.message);
    throw problem;
  }
  try {
    await load();
  } catch (problem) {
    return error(503, `The in-browser model could not load (${problem && problem.message ? problem.message : problem}); reload the page, or ${SEE_ALSO}.`);
  }
  const id = `chatcmpl-${crypto.randomUUID().replaceAll('-', '').slice(0, 24)}`;
  const created = Math.floor(Date.now() / 1000);
  if (!parsed.stream) {
    const release = await turn();
    try {
      const answer = await generate(parsed.options, signal, () => {});
      return json(200, completion(id, created, answer));
    } catch (problem) {
      return failure(problem);
    } finally {
      release();
    }
  }
  return streamed(id, created, parsed, signal);
}

/** Wait for this request's turn at the model; call the returned function when done. */
async function turn() {
  const before = queueTail;
  let release;
  queueTail = new Promise((resolve) => { release = resolve; });
  await before;
  return release;
}

/**
 * Run one chat completion through wllama's stream; onToken(text) for every token that carries text.
 * Returns {content, finishReason, promptTokens, completionTokens, timings}.
 */
async function generate(options, signal, onToken) {
  let content = '';
  let finishReason = null;
  let timings = null;
  let tokenChunks = 0;
  await wllama.createChatCompletion({
    ...options,
    stream: true,
    timings_per_token: false,
    abortSignal: signal,
    onData: (chunk) => {
      if (chunk.timings) timings = chunk.timings;
      const choice = chunk.choices && chunk.choices[0];
      if (!choice) return;
      const text = choice.delta && choice.delta.content;
      if (text) {
        tokenChunks += 1;
        content += text;
        onToken(text);
      }
      if (choice.finish_reason) finishReason = choice.finish_reason;
    },
  });
  // llama.cpp's own counts: the templated prompt's tokens (evaluated now or found in its cache) and the tokens
  // it generated; the chunk count stands in only if it sent no timings.
  const promptTokens = timings ? timings.prompt_n + timings.cache_n : null;
  const completionTokens = timings ? timings.predicted_n : tokenChunks;
  return { content, finishReason: finishReason ?? 'stop', promptTokens, completionTokens, timings };
}

function usage(answer) {
  const prompt = answer.promptTokens ?? 0;
  return { prompt_tokens: prompt, completion_tokens: answer.completionTokens, total_tokens: prompt + answer.completionTokens };
}

function completion(id, created, answer) {
  return {
    id,
    object: 'chat.completion',
    created,
    model: MODEL_ID,
    system_fingerprint: `wllama-${Wllama.getLibllamaVersion()}`,
    choices: [{
      index: 0,
      message: { role: 'assistant', content: answer.content },
      finish_reason: answer.finishReason,
      logprobs: null,
    }],
    usage: usage(answer),
    timings: answer.timings,
  };
}

function failure(problem) {
  if (problem instanceof WllamaRuntimeError) {
    // the WebAssembly module aborted and cannot answer again: drop it, so the next request loads a fresh one
    const dead = wllama;
    wllama = null;
    loading = null;
    if (dead) dead.exit().catch(() => {});
    return error(500, `The in-browser model crashed (${problem.message}); send the request again to reload it.`);
  }
  if (problem instanceof WllamaAbortError || (problem && problem.name === 'AbortError')) {
    return error(400, 'The request was cancelled before the in-browser model finished.');
  }
  const message = problem && problem.message ? problem.message : String(problem);
  if (/context|kv/i.test(message)) {
    return error(400, `The conversation no longer fits the in-browser model's ${N_CTX}-token context (${message}); start a shorter one.`);
  }
  return error(500, `The in-browser model failed while answering: ${message}`);
}

function streamed(id, created, parsed, signal) {
  const encoder = new TextEncoder();
  const stopped = new AbortController();
  if (signal) signal.addEventListener('abort', () => stopped.abort(), { once: true });
  const chunk = (choices, extra = {}) => ({
    id, object: 'chat.completion.chunk', created, model: MODEL_ID,
    system_fingerprint: `wllama-${Wllama.getLibllamaVersion()}`, choices, ...extra,
  });
  const body = new ReadableStream({
    async start(controller) {
      const send = (payload) => controller.enqueue(encoder.encode(`data: ${JSON.stringify(payload)}\n\n`));
      const release = await turn();
      try {
        send(chunk([{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null, logprobs: null }]));
        const answer = await generate(parsed.options, stopped.signal, (text) => {
          send(chunk([{ index: 0, delta: { content: text }, finish_reason: null, logprobs: null }]));
        });
        send(chunk([{ index: 0, delta: {}, finish_reason: answer.finishReason, logprobs: null }]));
        if (parsed.includeUsage) send(chunk([], { usage: usage(answer), timings: answer.timings }));
        controller.enqueue(encoder.encode('data: [DONE]\n\n'));
        controller.close();
      } catch (problem) {
        if (stopped.signal.aborted) {
          try { controller.close(); } catch { /* the reader already cancelled */ }
        } else {
          // the status is already sent: the error travels as one event, as llama-server sends it
          const answer = await failure(problem).json();
          try {
            send(answer);
            controller.close();
          } catch { /* the reader already cancelled */ }
        }
      } finally {
        release();
      }
    },
    cancel() {
      stopped.abort(); // the reader went away: stop generating
    },
  });
  return new Response(body, {
    status: 200,
    headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' },
  });
}
