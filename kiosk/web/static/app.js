// The kiosk's touchscreen. It draws what the daemon sends (the whole screen after every
// change, over server-sent events) and posts the patron's taps back. It decides nothing:
// a book shows "lent" only because the daemon said so after its security flag was set.
// Every text comes from the message catalogue (/api/texts/LANG); nothing is written here.
"use strict";

const state = {
  lang: null, dir: "ltr", texts: {}, languages: [], defaultLang: "zh-CN",
  view: null, panel: "pad", renewals: {}, pressed: null,
  prefs: { large: false, contrast: false, speech: false },
  lastScreen: null, spokenLines: {}, warnedAt: null, countdown: null, pinDigits: "",
};

// -- texts -------------------------------------------------------------------------------

function t(key, params) {
  const text = state.texts[key];
  if (text === undefined) return key;
  return text.replace(/\{(\w+)\}/g, (all, name) =>
    params && params[name] !== undefined && params[name] !== null ? String(params[name]) : all);
}

async function getJSON(url) {
  const response = await fetch(url, { cache: "no-store" });
  if (!response.ok) throw new Error(`${url}: ${response.status}`);
  return response.json();
}

async function post(url, body) {
  const response = await fetch(url, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  let data = {};
  try { data = await response.json(); } catch (e) { /* an empty answer */ }
  return { ok: response.ok, status: response.status, data };
}

async function setLanguage(lang) {
  const data = await getJSON(`/api/texts/${encodeURIComponent(lang)}`);
  state.lang = data.lang; state.dir = data.direction; state.texts = data.texts;
  document.documentElement.lang = state.lang;
  document.documentElement.dir = state.dir;
  document.title = t("ui.title");
  draw();
}

// -- building elements -------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "onclick") node.addEventListener("click", value);
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const ICONS = {
  card: "M3 6h18v12H3z M3 10h18 M6 15h5",
  book: "M5 4h10a3 3 0 0 1 3 3v13H8a3 3 0 0 1-3-3z M5 17a3 3 0 0 1 3-3h10",
  ok: "M4 12l5 5L20 6",
  no: "M6 6l12 12 M18 6L6 18",
  wait: "M12 3a9 9 0 1 0 9 9 M12 7v5l3 3",
  warn: "M12 3l10 18H2z M12 10v5 M12 18v.5",
  locker: "M5 3h14v18H5z M12 3v18 M9 11v2 M15 11v2",
  printer: "M6 9V3h12v6 M4 9h16v8H4z M7 14h10v7H7z",
  back: "M20 12H5 M11 6l-6 6 6 6",
  door: "M6 3h12v18H6z M14 12v.5",
};

function icon(name, label) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("class", `icon icon-${name}`);
  if (label) { svg.setAttribute("role", "img"); svg.setAttribute("aria-label", label); }
  else svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", ICONS[name]);
  svg.append(path);
  return svg;
}

function button(label, onclick, attrs) {
  return el("button", { type: "button", onclick, ...(attrs || {}) }, label);
}

// -- sounds and speech -------------------------------------------------------------------

let audio = null;
function chime(good) {
  try {
    audio = audio || new AudioContext();
    const notes = good ? [660, 880] : [220, 196];
    notes.forEach((freq, i) => {
      const osc = audio.createOscillator(); const gain = audio.createGain();
      osc.frequency.value = freq; osc.type = good ? "sine" : "square";
      gain.gain.value = 0.08;
      osc.connect(gain).connect(audio.destination);
      osc.start(audio.currentTime + i * 0.15); osc.stop(audio.currentTime + i * 0.15 + 0.14);
    });
  } catch (e) { /* no sound device: the screen still says it */ }
}

function say(text) {
  if (state.prefs.speech && text) post("/api/speak", { text, lang: state.lang });
}

// -- the screens -------------------------------------------------------------------------

const LINE_ICON = { working: "wait", lent: "ok", returned: "ok", not_lent: "no",
  not_returned: "no", unreadable: "warn", hand_to_staff: "warn" };

function lineText(line) {
  if (line.state === "working") return t(line.message_key || "ui.line.working", line.params);
  const notes = (line.notes || []).map((key) => t(key, line.params)).join(" ");
  if (line.state === "lent") return [t("ui.line.lent", { due_date: line.due_date }), notes].filter(Boolean).join(" ");
  if (line.state === "returned") return [t("ui.line.returned"), notes].filter(Boolean).join(" ");
  if (line.message_key) return t(line.message_key, line.params);
  return t(`ui.line.${line.state}`);
}

function drawLine(line) {
  const good = line.state === "lent" || line.state === "returned";
  const items = [
    icon(LINE_ICON[line.state] || "warn"),
    el("span", { class: "line-state", text: t(`ui.state.${line.state}`) }),
    el("span", { class: "line-title", text: line.title || line.barcode || "" }),
    el("span", { class: "line-text", text: lineText(line) }),
  ];
  if (line.staff) items.push(el("span", { class: "line-staff", text: t(line.staff.message_key, line.staff.params) }));
  return el("li", { class: `line line-${line.state} ${good ? "good" : ""}`, "data-state": line.state, "data-key": line.key,
    "data-barcode": line.barcode || "" }, items);
}

function alerts(view) {
  const box = [];
  const offline = view.daemon.offline || [];
  for (const device of offline) box.push(["warn", t(`ui.offline.${device}`)]);
  if ((view.printer_problems || []).length && !offline.includes("printer")) box.push(["printer", t("ui.printer.problem")]);
  if (view.door_alarm) box.push(["door", t("ui.door.alarm")]);
  if (view.entry && Date.now() - state.entryShownAt < 8000) {
    box.push(view.entry.ok ? ["door", t("ui.entry.ok")] : ["no", t(view.entry.message_key || "ui.entry.refused", view.entry.params)]);
  }
  return box.map(([name, text]) => el("p", { class: "alert" }, icon(name), el("span", { text })));
}

function idleScreen(view) {
  const padDown = (view.daemon.offline || []).includes("tag_reader");
  return [
    el("h1", { id: "heading", text: t("ui.idle.heading") }),
    el("div", { class: "choices" },
      el("div", { class: "choice" }, icon("card"), el("p", { class: "big", text: t("ui.idle.tap_card") })),
      button([icon("book"), el("span", { text: t("ui.idle.return") })],
        () => post("/api/press", { action: "return" }),
        { class: "choice primary", id: "start-return", disabled: padDown })),
    el("p", { class: "hint", text: t("ui.idle.hint") }),
  ];
}

function pinScreen(view, who) {
  // The PIN pad: the digits stay in this page until "OK" and are shown as dots only.
  const s = view.session;
  const digits = state.pinDigits;
  const press = (d) => { if (state.pinDigits.length < 6) { state.pinDigits += d; draw(); } };
  const keys = ["1", "2", "3", "4", "5", "6", "7", "8", "9"].map((d) => button(d, () => press(d), { class: "key", "data-key": d }));
  keys.push(button(t("ui.pin.erase"), () => { state.pinDigits = state.pinDigits.slice(0, -1); draw(); }, { class: "key", id: "pin-erase" }));
  keys.push(button("0", () => press("0"), { class: "key", "data-key": "0" }));
  keys.push(button(t("ui.pin.ok"), async () => {
    const pin = state.pinDigits; state.pinDigits = ""; draw();
    await post("/api/pin", { pin });
  }, { class: "key primary", id: "pin-ok", disabled: digits.length < 4 }));
  return [
    el("h1", { id: "heading", text: who }),
    el("p", { class: "instruction", id: "pin-message", role: "status" }, icon("card"), el("span", { text: t(s.pin.message_key, s.pin.params) })),
    el("p", { class: "pin-dots", id: "pin-dots", role: "status" },
      el("span", { class: "dots", "aria-hidden": "true" }, "●".repeat(digits.length) || "\u00a0"),
      el("span", { class: "sr-only", text: t("ui.pin.typed", { count: digits.length }) })),
    el("div", { class: "keypad", role: "group", "aria-label": t("ui.pin.keypad") }, keys),
    el("p", { class: "hint", text: t("ui.pin.books_wait") }),
    button(t("ui.mode.return"), () => post("/api/press", { action: "return" }), { class: "tab", id: "mode-return" }),
    button(t("ui.session.finish"), () => post("/api/press", { action: "finish" }), { class: "finish primary", id: "finish" }),
  ];
}

function sessionScreen(view) {
  const s = view.session; const acct = s.account || {};
  const who = s.card ? t("ui.session.hello", { name: acct.name || s.card }) : t("ui.session.returning");
  if (s.pin && s.mode === "lend") return pinScreen(view, who);
  const tabs = [];
  if (s.card) {
    tabs.push(button(t("ui.mode.lend"), () => { state.panel = "pad"; post("/api/press", { action: "lend" }); },
      { class: "tab", id: "mode-lend", "aria-pressed": String(s.mode === "lend" && state.panel === "pad") }));
  }
  tabs.push(button(t("ui.mode.return"), () => { state.panel = "pad"; post("/api/press", { action: "return" }); },
    { class: "tab", id: "mode-return", "aria-pressed": String(s.mode === "return" && state.panel === "pad") }));
  if (s.card) {
    tabs.push(button(t("ui.loans.tab", { count: (acct.loans || []).length }), () => { state.panel = "loans"; draw(); },
      { class: "tab", id: "tab-loans", "aria-pressed": String(state.panel === "loans") }));
    if ((acct.holds || []).length) {
      tabs.push(button(t("ui.holds.tab", { count: acct.holds.length }), () => { state.panel = "holds"; draw(); },
        { class: "tab", id: "tab-holds", "aria-pressed": String(state.panel === "holds") }));
    }
  }
  const body = [];
  if (state.panel === "loans" && s.card) body.push(loansPanel(acct));
  else if (state.panel === "holds" && s.card) body.push(holdsPanel(acct));
  else {
    if (acct.blocked || acct.expired) body.push(el("p", { class: "alert", id: "account-problem" }, icon("warn"),
      el("span", { text: t(acct.blocked ? "ui.session.blocked" : "ui.session.expired") })));
    body.push(el("p", { class: "instruction" }, icon("book"),
      el("span", { text: t(s.mode === "lend" ? "ui.pad.lend" : "ui.pad.return") })));
    body.push(el("ul", { class: "lines", id: "lines", "aria-live": "polite" }, s.lines.map(drawLine)));
  }
  return [
    el("h1", { id: "heading", text: who }),
    el("div", { class: "tabs", role: "group", "aria-label": t("ui.session.choose") }, tabs),
    ...body,
    button(t("ui.session.finish"), () => post("/api/press", { action: "finish" }), { class: "finish primary", id: "finish" }),
  ];
}

function loansPanel(acct) {
  const loans = acct.loans || [];
  if (!loans.length) return el("p", { class: "instruction", id: "loans", text: t("ui.loans.none") });
  return el("ul", { class: "lines", id: "loans" }, loans.map((loan) => {
    const result = state.renewals[loan.barcode];
    return el("li", { class: "line", "data-barcode": loan.barcode },
      icon(loan.overdue ? "warn" : "book"),
      el("span", { class: "line-title", text: loan.title }),
      el("span", { class: "line-text", text: t(loan.overdue ? "ui.loans.overdue" : "ui.loans.due", { due_date: loan.due_date }) }),
      result ? el("span", { class: "line-staff", role: "status", text: result }) : null,
      button(t("ui.loans.renew"), () => renew(loan.barcode), { class: "small", "data-renew": loan.barcode }));
  }));
}

function holdsPanel(acct) {
  return el("ul", { class: "lines", id: "holds" }, (acct.holds || []).map((hold) =>
    el("li", { class: "line", "data-hold": String(hold.hold_id) },
      icon("locker"),
      el("span", { class: "line-title", text: hold.title }),
      el("span", { class: "line-text", text: t("ui.holds.where", { slot: hold.slot || "-" }) }),
      button(t("ui.holds.open", { slot: hold.slot || "-" }), () => pickup(hold), { class: "small", "data-pickup": String(hold.hold_id) }))));
}

async function renew(barcode) {
  const answer = await post("/api/renew", { barcode });
  const d = answer.data || {};
  state.renewals[barcode] = d.message_key ? t(d.message_key, d.params) : t("ui.error");
  chime(Boolean(d.ok));
  say(state.renewals[barcode]);
  draw();
}

async function pickup(hold) {
  state.panel = "pad";
  await post("/api/pickup", { hold: hold.hold_id });
  say(t("ui.holds.opening", { slot: hold.slot || "-" }));
  draw();
}

function doneScreen(view) {
  const d = view.done; const items = [];
  items.push(el("h1", { id: "heading", text: t(d.reason === "timeout" ? "ui.done.timeout" : "ui.done.heading") }));
  if (d.message) items.push(el("p", { class: "alert", id: "done-message" }, icon("warn"), el("span", { text: t(d.message.message_key, d.message.params) })));
  const receipt = { printing: "ui.receipt.printing", printed: "ui.receipt.printed",
    failed: d.mode === "return" ? "ui.receipt.failed_return" : "ui.receipt.failed", none: null }[d.receipt];
  if (receipt) items.push(el("p", { class: `receipt receipt-${d.receipt}`, id: "receipt" }, icon("printer"), el("span", { text: t(receipt) })));
  if (d.lines.length) items.push(el("ul", { class: "lines", id: "summary" }, d.lines.map(drawLine)));
  if (view.options.rating && d.ask_rating && !d.rated) {
    items.push(el("div", { class: "rating", role: "group", "aria-labelledby": "rating-q", id: "rating" },
      el("p", { id: "rating-q", text: t("ui.rating.question") }),
      [1, 2, 3, 4, 5].map((n) => button(t(`ui.rating.score_${n}`),
        () => post("/api/rating", { session: d.session, score: n }), { class: "score", "data-score": String(n) }))));
  } else if (d.rated) {
    items.push(el("p", { class: "hint", id: "rated", text: t("ui.rating.thanks") }));
  }
  items.push(button(t("ui.done.close"), () => post("/api/press", { action: "dismiss" }), { class: "finish", id: "dismiss" }));
  return items;
}

function warningDialog(view) {
  const overlay = document.getElementById("overlay");
  const dialog = document.getElementById("dialog");
  const warning = view.screen === "session" && view.session.warning;
  if (!warning) {
    overlay.hidden = true; dialog.replaceChildren(); clearInterval(state.countdown);
    state.warnedAt = null; return;
  }
  if (state.warnedAt === null) {
    state.warnedAt = Date.now(); state.warnSeconds = warning.params.seconds || 15;
    clearInterval(state.countdown);
    state.countdown = setInterval(() => drawWarning(), 1000);
    say(t("ui.warning.title") + " " + t("ui.warning.text", warning.params));
  }
  overlay.hidden = false;
  drawWarning();
}

function drawWarning() {
  const dialog = document.getElementById("dialog");
  const left = Math.max(0, state.warnSeconds - Math.floor((Date.now() - state.warnedAt) / 1000));
  dialog.replaceChildren(
    el("h2", { id: "dialog-title", text: t("ui.warning.title") }),
    el("p", { id: "dialog-text", text: t("ui.warning.text", { seconds: left }) }),
    button(t("ui.warning.continue"), () => post("/api/press", { action: "still_here" }), { class: "primary", id: "still-here" }));
  const focused = document.activeElement;
  if (!dialog.contains(focused)) dialog.querySelector("button").focus();
}

// -- drawing -----------------------------------------------------------------------------

function drawTools() {
  const langs = document.getElementById("langs");
  langs.setAttribute("aria-label", t("ui.tools.language"));
  langs.replaceChildren(...state.languages.map((lang) => button(lang.name, () => setLanguage(lang.code),
    { class: "tool", lang: lang.code, "data-lang": lang.code, "aria-pressed": String(lang.code === state.lang) })));
  for (const name of ["large", "contrast", "speech"]) {
    const node = document.getElementById(name);
    node.textContent = t(`ui.tools.${name}`) + " · " + t(state.prefs[name] ? "ui.tools.on" : "ui.tools.off");
    node.setAttribute("aria-pressed", String(state.prefs[name]));
    node.hidden = name === "speech" && state.view && !state.view.options.speech;
  }
  document.getElementById("tools").setAttribute("aria-label", t("ui.tools.label"));
  document.body.classList.toggle("large", state.prefs.large);
  document.body.classList.toggle("contrast", state.prefs.contrast);
}

function keepTyping(main, redraw) {
  // The screen is drawn again whenever the daemon says anything (a receipt printed, say):
  // what staff were typing, and where, must survive that.
  const active = document.activeElement;
  const focused = active && main.contains(active) ? active.id : null;
  const typed = {};
  for (const node of main.querySelectorAll("input[id]:not([type=checkbox])")) typed[node.id] = node.value;
  redraw();
  for (const [id, value] of Object.entries(typed)) {
    const node = document.getElementById(id);
    if (node && !node.value && value) node.value = value;
  }
  const again = focused && document.getElementById(focused);
  if (again) again.focus();
}

function draw() {
  const view = state.view;
  if (!view || !state.lang) return;
  drawTools();
  document.getElementById("brand").textContent = t("ui.brand");
  document.getElementById("alerts").replaceChildren(...alerts(view));
  const main = document.getElementById("main");
  if (view.desk) {  // staff at the desk (desk.js): the patron's screens wait
    main.dataset.screen = "desk";
    main.dataset.desk = view.desk.state === "pin" ? "pin" : view.desk.page;
    keepTyping(main, () => main.replaceChildren(...deskScreen(view).filter((node) => node)));
    return;
  }
  main.dataset.screen = view.screen;
  delete main.dataset.desk;
  const screens = { idle: idleScreen, session: sessionScreen, done: doneScreen, laptop: laptopScreen };
  main.replaceChildren(...screens[view.screen](view));
  warningDialog(view);
}

function announce(previous, view) {
  // Sounds and speech for what changed: a new screen, a book's final state.
  if (!previous || previous.screen !== view.screen) {
    const heading = document.getElementById("heading");
    if (heading) say(heading.textContent);
    if (view.screen !== "session") state.panel = "pad";
    if (view.screen === "idle" && previous && previous.screen === "done") resetForNextPatron();
  }
  const lines = view.session ? view.session.lines : [];
  for (const line of lines) {
    const key = `${view.session.id}:${line.key}`;
    if (line.state === "working" || state.spokenLines[key] === line.state) continue;
    state.spokenLines[key] = line.state;
    const good = line.state === "lent" || line.state === "returned";
    chime(good);
    say(`${line.title} ${lineText(line)}`);
  }
}

function resetForNextPatron() {
  // The next patron starts from the library's defaults, not from the last one's choices.
  state.prefs = { large: false, contrast: false, speech: false };
  state.renewals = {}; state.spokenLines = {};
  if (state.lang !== state.defaultLang) setLanguage(state.defaultLang);
}

function connect() {
  const source = new EventSource("/events");
  source.addEventListener("view", (message) => {
    const previous = state.view;
    state.view = JSON.parse(message.data);
    if (state.view.entry && (!previous || JSON.stringify(previous.entry) !== JSON.stringify(state.view.entry))) {
      state.entryShownAt = Date.now();
      setTimeout(draw, 8100);
    }
    if (state.view.screen === "session" && previous && previous.session && previous.session.id !== state.view.session.id) {
      state.panel = "pad"; state.renewals = {}; state.pinDigits = "";
    }
    draw();
    announce(previous, state.view);
  });
  source.onerror = () => document.body.classList.add("reconnecting");
  source.onopen = () => document.body.classList.remove("reconnecting");
}

async function main() {
  const langs = await getJSON("/api/languages");
  state.languages = langs.languages; state.defaultLang = langs.default; state.laptop = langs.laptop;
  for (const name of ["large", "contrast", "speech"]) {
    document.getElementById(name).addEventListener("click", () => {
      state.prefs[name] = !state.prefs[name];
      draw();
      if (name === "speech" && state.prefs.speech) say(t("ui.tools.speech_on"));
    });
  }
  await setLanguage(state.defaultLang);
  connect();
}

main();
