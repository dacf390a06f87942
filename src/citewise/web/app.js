// citewise web UI: plain JavaScript over the same HTTP API any client uses.
// Untrusted text (passages, titles, file names, locations) is only ever set as textContent.
// Answers are Markdown: rendered by markdown-it with raw HTML off, then sanitized by
// DOMPurify (an allow-list of tags, attributes and URL schemes) before they reach the DOM;
// the libraries are vendored under /static/vendor/ (vendor/README.md), loaded before this file.
"use strict";

const KEY_STORAGE = "citewise.key";
const MODEL = "citewise";
const SEARCH_DELAY_MS = 250;

const state = {
  key: sessionStorage.getItem(KEY_STORAGE) || "",
  collections: [],
  history: [], // {role, content} of earlier turns, for follow-up questions
  searchTimer: null,
  searchSeq: 0,
};

const $ = (id) => document.getElementById(id);

// -- API ------------------------------------------------------------------------

async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  if (state.key) headers.set("Authorization", `Bearer ${state.key}`);
  if (options.json !== undefined) {
    headers.set("Content-Type", "application/json");
    options.body = JSON.stringify(options.json);
  }
  const response = await fetch(path, { ...options, headers });
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      message = (await response.json()).error.message || message;
    } catch (_) { /* not JSON */ }
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return response;
}

function selectedCollections() {
  return [...document.querySelectorAll("#collection-list input:checked")].map((el) => el.value);
}

// -- sign in ----------------------------------------------------------------------

async function start() {
  try {
    const response = await api("/v1/collections");
    const body = await response.json();
    showApp(body);
  } catch (error) {
    if (error.status === 401) {
      showSignIn(state.key ? "That key was not accepted." : "");
    } else {
      showSignIn(error.message);
    }
  }
}

function showSignIn(message) {
  $("app").hidden = true;
  $("sign-in").hidden = false;
  $("sign-out").hidden = true;
  $("sign-in-error").textContent = message || "";
  $("api-key").focus();
}

function showApp(body) {
  $("sign-in").hidden = true;
  $("app").hidden = false;
  $("sign-out").hidden = !state.key;
  $("who").textContent = state.key ? `signed in as ${body.key}` : "no authentication (loopback)";
  $("upload").hidden = !body.writable;
  state.collections = body.data.map((c) => c.name);
  renderCollections(body.data);
  $("question").focus();
}

function renderCollections(collections) {
  const list = $("collection-list");
  list.replaceChildren();
  if (!collections.length) {
    list.textContent = "No collections yet: add documents below.";
    return;
  }
  for (const c of collections) {
    const label = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.value = c.name;
    box.checked = true;
    box.addEventListener("change", scheduleSearch);
    label.append(box, ` ${c.name} `);
    const count = document.createElement("span");
    count.className = "muted";
    count.textContent = `(${c.documents} docs)`;
    label.append(count);
    list.append(label);
  }
}

async function refreshCollections() {
  const body = await (await api("/v1/collections")).json();
  const checked = new Set(selectedCollections());
  renderCollections(body.data);
  for (const box of document.querySelectorAll("#collection-list input")) {
    box.checked = checked.size === 0 || checked.has(box.value) || !state.collections.includes(box.value);
  }
  state.collections = body.data.map((c) => c.name);
}

$("sign-in-form").addEventListener("submit", (event) => {
  event.preventDefault();
  state.key = $("api-key").value.trim();
  sessionStorage.setItem(KEY_STORAGE, state.key);
  $("api-key").value = "";
  start();
});

$("sign-out").addEventListener("click", () => {
  sessionStorage.removeItem(KEY_STORAGE);
  state.key = "";
  state.history = [];
  $("turns").replaceChildren();
  showSignIn("");
});

// -- search as you type -------------------------------------------------------------

function scheduleSearch() {
  clearTimeout(state.searchTimer);
  state.searchTimer = setTimeout(liveSearch, SEARCH_DELAY_MS);
}

async function liveSearch() {
  const query = $("question").value.trim();
  const seq = ++state.searchSeq;
  const list = $("live-results");
  if (!query) {
    list.replaceChildren();
    return;
  }
  try {
    const response = await api("/v1/search", {
      method: "POST",
      json: { query, k: 5, collections: selectedCollections() },
    });
    const body = await response.json();
    if (seq !== state.searchSeq) return; // a newer keystroke already asked
    list.replaceChildren(...body.data.map((hit) => passageItem(hit)));
    if (!body.data.length) list.textContent = "No matching passages.";
  } catch (error) {
    if (seq === state.searchSeq) list.textContent = error.message;
  }
}

function passageItem(hit) {
  const item = document.createElement("li");
  const button = document.createElement("button");
  button.type = "button";
  button.className = "passage";
  const title = document.createElement("strong");
  title.textContent = plain(hit.title);
  const where = document.createElement("span");
  where.className = "muted";
  where.textContent = ` · ${plain(hit.location)}`;
  const text = document.createElement("span");
  text.className = "snippet";
  text.textContent = hit.text.length > 280 ? `${hit.text.slice(0, 280)}…` : hit.text;
  button.append(title, where, document.createElement("br"), text);
  button.addEventListener("click", () => openSource(hit, hit.start, hit.end));
  item.append(button);
  return item;
}

$("question").addEventListener("input", scheduleSearch);
$("question").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    $("ask-form").requestSubmit();
  }
});

// -- ask ------------------------------------------------------------------------------

$("ask-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const question = $("question").value.trim();
  if (!question) return;
  $("question").value = "";
  $("ask-button").disabled = true;
  try {
    await ask(question);
  } finally {
    $("ask-button").disabled = false;
    $("question").focus();
  }
});

$("new-conversation").addEventListener("click", () => {
  state.history = [];
  $("turns").replaceChildren();
  $("question").focus();
});

async function ask(question) {
  const turn = $("turn-template").content.firstElementChild.cloneNode(true);
  turn.querySelector(".question").textContent = question;
  const answerEl = turn.querySelector(".answer");
  const status = turn.querySelector(".status");
  $("turns").append(turn);
  turn.scrollIntoView({ block: "end" });
  const record = { question, text: "", sources: [], citations: [], frame: 0 };
  const messages = [...state.history, { role: "user", content: question }];
  status.textContent = "Thinking…";
  try {
    const response = await api("/v1/chat/completions", {
      method: "POST",
      json: { model: MODEL, messages, stream: true, collections: selectedCollections() },
    });
    await readEvents(response, (chunk) => {
      if (chunk.error) throw new Error(chunk.error.message);
      if (chunk.search_results) record.sources = chunk.search_results;
      if (chunk.citations) record.citations = chunk.citations;
      const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
      if (delta && delta.content) {
        record.text += delta.content;
        scheduleRender(answerEl, record);
        status.textContent = "";
      }
    });
    cancelRender(record);
    renderAnswer(answerEl, record);
    renderCitations(turn.querySelector(".citations"), record);
    state.history.push({ role: "user", content: question }, { role: "assistant", content: record.text });
    status.textContent = "";
  } catch (error) {
    cancelRender(record);
    status.textContent = "";
    answerEl.textContent = `Error: ${error.message}`;
    answerEl.classList.add("error");
  }
  answerEl.setAttribute("aria-busy", "false");
  wireTurnActions(turn, record);
}

async function readEvents(response, onChunk) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data: ")) continue;
        const data = line.slice(6);
        if (data === "[DONE]") return;
        onChunk(JSON.parse(data));
      }
    }
  }
}

// -- answers as Markdown ------------------------------------------------------------------
// CommonMark (plus tables and strikethrough) with raw HTML off, so "<script>" in an answer
// is text; links only to http(s) and mailto; images are not fetched (no image rule: an
// image becomes a link to it). Then DOMPurify keeps only the tags and attributes below, and
// only afterwards are [n] markers turned into buttons, as DOM nodes built here.

const ANSWER_TAGS = [
  "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "s", "del", "code", "pre",
  "blockquote", "ul", "ol", "li", "table", "thead", "tbody", "tr", "th", "td", "a", "span",
];
const ANSWER_ATTRS = ["href", "title", "class", "start"];
const ANSWER_URL = /^(?:https?|mailto):/i; // no javascript:, data:, relative or other schemes
const MARKER_SPLIT = /(\[\d+\])/;

const markdown = makeMarkdown();

function makeMarkdown() {
  if (typeof window.markdownit !== "function" || !window.DOMPurify || !DOMPurify.isSupported) {
    return null; // the libraries did not load: answers fall back to plain text
  }
  const md = window.markdownit({ html: false, linkify: true, typographer: false, highlight: highlightCode });
  md.linkify.set({ fuzzyLink: false, fuzzyEmail: false }); // "README.md" is not a link
  md.validateLink = (url) => ANSWER_URL.test(url.trim()); // any other link stays as its text
  md.disable("image");
  // No reference definitions: a model that ends with "[1]: https://…" would otherwise turn
  // every [1] marker into that link.
  md.disable("reference");
  // Table alignment comes out as a style attribute, which the CSP (no inline styles) would
  // refuse: a class instead.
  md.core.ruler.push("alignment_classes", (state) => {
    for (const token of state.tokens) {
      const style = token.attrGet("style");
      if (style === null) continue;
      token.attrs = token.attrs.filter(([name]) => name !== "style");
      const align = /text-align:(left|right|center)/.exec(style);
      if (align) token.attrJoin("class", `align-${align[1]}`);
    }
  });
  DOMPurify.addHook("afterSanitizeAttributes", (node) => {
    if (node.tagName === "A" && node.hasAttribute("href")) {
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer");
    }
  });
  return md;
}

// A fenced block in a language highlight.js knows, highlighted (its output is escaped
// text in <span class="hljs-…">, and goes through DOMPurify with the rest); else "" and
// markdown-it escapes the code itself.
function highlightCode(code, language) {
  if (!language || !window.hljs || !hljs.getLanguage(language)) return "";
  try {
    const html = hljs.highlight(code, { language, ignoreIllegals: true }).value;
    return `<pre><code class="hljs language-${markdown.utils.escapeHtml(language)}">${html}</code></pre>`;
  } catch (_) {
    return "";
  }
}

// The answer as sanitized DOM, its [n] markers live.
function answerFragment(record) {
  const fragment = DOMPurify.sanitize(markdown.render(record.text), {
    ALLOWED_TAGS: ANSWER_TAGS,
    ALLOWED_ATTR: ANSWER_ATTRS,
    ALLOWED_URI_REGEXP: ANSWER_URL,
    ALLOW_DATA_ATTR: false,
    ALLOW_ARIA_ATTR: false,
    RETURN_DOM_FRAGMENT: true,
  });
  linkMarkers(fragment, record);
  return fragment;
}

// Each [n] in the text (not in code, not inside a link) becomes a button that opens source n.
function linkMarkers(root, record) {
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT, {
    acceptNode: (node) => (node.parentElement && node.parentElement.closest("code, pre, a")
      ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT),
  });
  const texts = [];
  while (walker.nextNode()) texts.push(walker.currentNode);
  for (const node of texts) {
    const parts = node.data.split(MARKER_SPLIT);
    if (parts.length > 1) node.replaceWith(...markerParts(parts, record));
  }
}

function markerParts(parts, record) {
  const nodes = [];
  for (const part of parts) {
    if (!part) continue;
    const match = /^\[(\d+)\]$/.exec(part);
    const number = match ? Number(match[1]) : 0;
    const source = number ? sourceFor(record, number) : null;
    if (source) {
      const marker = document.createElement("button");
      marker.type = "button";
      marker.className = "marker";
      marker.textContent = `[${number}]`;
      marker.setAttribute("aria-label", `Source ${number}: ${plain(source.title)}`);
      marker.addEventListener("click", () => openCitation(record, number));
      nodes.push(marker);
    } else {
      nodes.push(document.createTextNode(part));
    }
  }
  return nodes;
}

// Render the answer into its element. Blocks already shown and unchanged are kept as they
// are (a marker being clicked or text being selected while the answer streams stays put);
// from the first block that differs on, the new ones replace the old.
function renderAnswer(element, record) {
  const fresh = markdown
    ? [...answerFragment(record).childNodes]
    : markerParts(record.text.split(MARKER_SPLIT), record);
  element.classList.toggle("plain", !markdown);
  const old = [...element.childNodes];
  let same = 0;
  while (same < old.length && same < fresh.length && old[same].isEqualNode(fresh[same])) same++;
  for (const node of old.slice(same)) node.remove();
  element.append(...fresh.slice(same));
}

// While an answer streams, at most one render per frame: the whole text so far is parsed
// again, so an unfinished list or code block shows as it will end up.
function scheduleRender(element, record) {
  if (record.frame) return;
  record.frame = requestAnimationFrame(() => {
    record.frame = 0;
    renderAnswer(element, record);
  });
}

function cancelRender(record) {
  if (record.frame) cancelAnimationFrame(record.frame);
  record.frame = 0;
}

// Titles and heading paths are shown as text; Markdown emphasis left in them ("**Setup**"
// from a Notion export) is shown without its markers. Underscores are left alone: they are
// in file and identifier names far more often than they are emphasis.
function plain(text) {
  return String(text ?? "")
    .replace(/\*\*(?=\S)([^*]*?\S)\*\*/g, "$1")
    .replace(/(^|[^\w*])\*(?=[^\s*])([^*]*?[^\s*])\*(?![\w*])/g, "$1$2")
    .replace(/~~(?=\S)([^~]*?\S)~~/g, "$1")
    .replace(/`([^`\n]+)`/g, "$1");
}

function sourceFor(record, number) {
  return record.citations.find((c) => c.number === number)
    || record.sources.find((s) => s.number === number);
}

function renderCitations(list, record) {
  list.replaceChildren();
  for (const citation of record.citations) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "citation";
    button.textContent = `[${citation.number}] ${plain(citation.title)} — ${plain(citation.location)}`;
    button.addEventListener("click", () => openCitation(record, citation.number));
    const quote = document.createElement("blockquote");
    quote.textContent = citation.quote;
    item.append(button, quote);
    list.append(item);
  }
}

function openCitation(record, number) {
  const source = sourceFor(record, number);
  if (!source) return;
  const start = source.quote_start ?? source.start;
  const end = source.quote_end ?? source.end;
  openSource(source, start, end);
}

// The document around a cited span, with the span highlighted.
async function openSource(source, start, end) {
  const panel = $("source");
  panel.hidden = false;
  $("source-title").textContent = plain(source.title);
  const page = source.page ? `page ${source.page} · ` : "";
  $("source-location").textContent = `${page}${plain(source.location)} · ${source.source}`;
  const text = $("source-text");
  text.textContent = "Loading…";
  showRecording(source);
  try {
    const path = `/v1/collections/${encodeURIComponent(source.collection)}/documents/` +
      `${source.document_id}?around=${start}&window=3000`;
    const body = await (await api(path)).json();
    const from = start - body.text_offset;
    const to = end - body.text_offset;
    const mark = document.createElement("mark");
    mark.textContent = body.text.slice(from, to);
    text.replaceChildren(
      document.createTextNode((body.text_offset > 0 ? "…" : "") + body.text.slice(0, from)),
      mark,
      document.createTextNode(body.text.slice(to) + (body.text_offset + body.text.length < body.length ? "…" : "")),
    );
    panel.focus();
    mark.scrollIntoView({ block: "center" });
  } catch (error) {
    text.textContent = error.message;
  }
}

// A recording's passage plays from its first second (a signed link: <audio> sends no key).
async function showRecording(source) {
  const holder = $("source-media");
  holder.replaceChildren();
  if (source.start_seconds == null || !(source.metadata && source.metadata.media)) return;
  try {
    const path = `/v1/collections/${encodeURIComponent(source.collection)}/documents/` +
      `${source.document_id}/media`;
    const link = await (await api(path, { method: "POST" })).json();
    const video = /\.(mp4|mkv|mov|webm)$/i.test(source.source);
    const player = document.createElement(video ? "video" : "audio");
    player.id = "source-player";
    player.controls = true;
    player.preload = "metadata";
    player.addEventListener("loadedmetadata", () => {
      player.currentTime = source.start_seconds;
      player.play().catch(() => {}); // a browser may refuse to autoplay; the controls remain
    }, { once: true });
    player.src = link.url;
    holder.append(player);
  } catch (error) {
    holder.textContent = error.message;
  }
}

$("close-source").addEventListener("click", closeSource);
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && !$("source").hidden) closeSource();
});

function closeSource() {
  $("source").hidden = true;
  $("source-media").replaceChildren(); // stops a playing recording
  $("question").focus();
}

// -- copy and feedback ---------------------------------------------------------------

function wireTurnActions(turn, record) {
  const status = turn.querySelector(".status");
  turn.querySelector(".copy").addEventListener("click", async () => {
    const sources = record.citations.map((c) => `[${c.number}] ${c.title} (${c.location}) ${c.url || c.source}`);
    const text = sources.length ? `${record.text}\n\nSources:\n${sources.join("\n")}` : record.text;
    try {
      await navigator.clipboard.writeText(text);
      status.textContent = "Copied.";
    } catch (_) {
      status.textContent = "Copy failed: the browser refused clipboard access.";
    }
  });
  for (const button of turn.querySelectorAll(".thumb")) {
    button.addEventListener("click", async () => {
      const rating = button.classList.contains("up") ? 1 : -1;
      try {
        await api("/v1/feedback", {
          method: "POST",
          json: { rating, question: record.question, answer: record.text, citations: record.citations, model: MODEL },
        });
        for (const other of turn.querySelectorAll(".thumb")) other.setAttribute("aria-pressed", String(other === button));
        status.textContent = "Thanks for the feedback.";
      } catch (error) {
        status.textContent = error.message;
      }
    });
  }
}

// -- upload -------------------------------------------------------------------------------

const dropZone = $("drop-zone");
dropZone.addEventListener("click", () => $("file-input").click());
dropZone.addEventListener("keydown", (event) => {
  if (event.key === "Enter" || event.key === " ") {
    event.preventDefault();
    $("file-input").click();
  }
});
dropZone.addEventListener("dragover", (event) => {
  event.preventDefault();
  dropZone.classList.add("over");
});
dropZone.addEventListener("dragleave", () => dropZone.classList.remove("over"));
dropZone.addEventListener("drop", (event) => {
  event.preventDefault();
  dropZone.classList.remove("over");
  upload([...event.dataTransfer.files]);
});
$("file-input").addEventListener("change", (event) => {
  upload([...event.target.files]);
  event.target.value = "";
});

async function upload(files) {
  if (!files.length) return;
  const collection = $("upload-collection").value.trim() || "default";
  const list = $("upload-files");
  const rows = new Map();
  for (const file of files) {
    const item = document.createElement("li");
    item.textContent = `${file.name}: uploading…`;
    list.append(item);
    rows.set(file.name, item);
  }
  const form = new FormData();
  for (const file of files) form.append("files", file, file.name);
  try {
    const response = await api(`/v1/collections/${encodeURIComponent(collection)}/documents`, {
      method: "POST",
      body: form,
    });
    let job = await response.json();
    const byIndex = [...rows.values()];
    while (job.status === "queued" || job.status === "running") {
      showJob(job, byIndex);
      await new Promise((resolve) => setTimeout(resolve, 400));
      job = await (await api(`/v1/jobs/${job.id}`)).json();
    }
    showJob(job, byIndex);
    await refreshCollections();
    scheduleSearch();
  } catch (error) {
    for (const item of rows.values()) {
      item.textContent = `${item.textContent.split(":")[0]}: ${error.message}`;
      item.className = "error";
    }
  }
}

function showJob(job, items) {
  job.files.forEach((file, i) => {
    const item = items[i];
    if (!item) return;
    const counts = file.documents
      ? ` (${file.kind} export: ${file.documents.added} added, ${file.documents.updated} updated, ` +
        `${file.documents.unchanged} unchanged, ${file.documents.deleted} deleted)`
      : file.chunks ? ` (${file.chunks} chunks)` : "";
    const detail = file.status === "queued" ? (job.status === "running" ? "ingesting…" : "queued") :
      `${file.status}${counts}${file.error ? ` — ${file.error}` : ""}`;
    item.textContent = `${file.name}: ${detail}`;
    item.className = file.status === "failed" || file.status === "skipped" ? "error" : "";
    item.dataset.status = file.status;
  });
}

start();
