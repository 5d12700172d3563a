// The staff desk on the kiosk's screen (kiosk/daemon/desk.py): the staff PIN pad, the desk's
// home (stop, what to do), lending for a patron with overrides, and registering a reader
// with the card written on the reader. Like the patron's screens it decides nothing: it
// draws view.desk and posts staff's taps to /api/desk/ACTION. Uses app.js's helpers.
"use strict";

const desk = { digits: "", form: {}, override: null, answer: null };

async function deskPost(action, body) {
  const answer = await post(`/api/desk/${action}`, body || {});
  desk.answer = answer.ok ? null : answer.data;
  if (!answer.ok) draw();
  return answer;
}

function deskAnswer() {
  // A refusal of the last request (wrong PIN, a bad stop...), drawn until the next one.
  const a = desk.answer;
  if (!a || !a.message_key || a.message_key === "registration.refused") return null;
  return el("p", { class: "alert desk-answer", id: "desk-answer", role: "alert" },
    icon("no"), el("span", { text: t(a.message_key, a.params) }));
}

function deskPinScreen(d) {
  const press = (digit) => { if (desk.digits.length < 6) { desk.digits += digit; draw(); } };
  const keys = ["1", "2", "3", "4", "5", "6", "7", "8", "9"].map((k) =>
    button(k, () => press(k), { class: "key", "data-key": k }));
  keys.push(button(t("ui.pin.erase"), () => { desk.digits = desk.digits.slice(0, -1); draw(); }, { class: "key", id: "desk-pin-erase" }));
  keys.push(button("0", () => press("0"), { class: "key", "data-key": "0" }));
  keys.push(button(t("ui.pin.ok"), async () => {
    const pin = desk.digits; desk.digits = ""; draw();
    await deskPost("pin", { pin });
  }, { class: "key primary", id: "desk-pin-ok", disabled: desk.digits.length < 4 }));
  const message = d.message ? t(d.message.key, d.message.params) : t("ui.desk.pin.enter", { card: d.card });
  return [
    el("h1", { id: "heading", text: t("ui.desk.pin.heading") }),
    el("p", { class: "instruction", id: "desk-pin-message", role: "status" }, icon("card"), el("span", { text: message })),
    el("p", { class: "pin-dots", id: "desk-pin-dots" },
      el("span", { class: "dots", "aria-hidden": "true" }, "●".repeat(desk.digits.length) || "\u00a0"),
      el("span", { class: "sr-only", text: t("ui.pin.typed", { count: desk.digits.length }) })),
    el("div", { class: "keypad", role: "group", "aria-label": t("ui.pin.keypad") }, keys),
    button(t("ui.desk.cancel"), () => { desk.digits = ""; deskPost("cancel"); }, { class: "finish", id: "desk-cancel" }),
  ];
}

function stopPicker(d) {
  if (!d.stops.length) return null;
  const select = el("select", { id: "desk-stop", "aria-label": t("ui.desk.stop.label") },
    el("option", { value: "", text: t("ui.desk.stop.none") }),
    d.stops.map((name) => el("option", { value: name, text: name, selected: name === d.stop })));
  select.addEventListener("change", () => deskPost("stop", { stop: select.value || null }));
  return el("label", { class: "desk-stop" }, el("span", { text: t("ui.desk.stop.label") }), select);
}

function deskBar(d) {
  const tabs = [["home", "ui.desk.tab.home"], ["lend", "ui.desk.tab.lend"]];
  if (d.registration_enabled) tabs.push(["register", "ui.desk.tab.register"]);
  return el("div", { class: "desk-bar" },
    el("p", { class: "desk-who", id: "desk-who", text: t("ui.desk.signed_in", { name: d.staff.name }) }),
    stopPicker(d),
    el("div", { class: "tabs", role: "group" }, tabs.map(([page, key]) =>
      button(t(key), () => deskPost("page", { page }), { class: "tab", id: `desk-tab-${page}`, "aria-pressed": String(d.page === page) }))),
    button(t("ui.desk.sign_out"), () => deskPost("sign_out"), { class: "tab", id: "desk-sign-out" }));
}

function supplyNote(d) {
  const s = d.supply;
  if (!s || !s.message_key) return null;
  return el("p", { class: "alert", id: "desk-supply", role: "status" }, icon("warn"), el("span", { text: t(s.message_key, s) }));
}

function deskHome(d) {
  return [
    el("h1", { id: "heading", text: t("ui.desk.home.heading") }),
    el("p", { class: "instruction" }, icon("card"), el("span", { text: t("ui.desk.home.tap_patron") })),
    d.registration_enabled
      ? button([icon("card"), el("span", { text: t("ui.desk.home.register") })], () => deskPost("page", { page: "register" }), { class: "choice primary", id: "desk-register" })
      : el("p", { class: "hint", id: "desk-no-registration", text: t(d.registration_problem || "registration.disabled") }),
    supplyNote(d),
  ];
}

function typedCard() {
  const input = el("input", { id: "desk-card", inputmode: "numeric", autocomplete: "off", "aria-label": t("ui.desk.lend.card") });
  const form = el("form", { class: "desk-typed" }, el("label", { for: "desk-card", text: t("ui.desk.lend.card") }), input,
    el("button", { type: "submit", id: "desk-card-go" }, t("ui.desk.lend.go")));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const card = input.value.trim(); input.value = "";
    if (card) deskPost("patron", { card });
  });
  return form;
}

function typedBarcode() {
  // A book whose tag cannot be read: its barcode typed in (lent to the card in session,
  // else taken back); the daemon says on its line that the tag was not written.
  const input = el("input", { id: "desk-barcode", autocomplete: "off", "aria-label": t("ui.desk.lend.barcode") });
  const form = el("form", { class: "desk-typed" }, el("label", { for: "desk-barcode", text: t("ui.desk.lend.barcode") }), input,
    el("button", { type: "submit", id: "desk-barcode-go" }, t("ui.desk.lend.barcode_go")));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const barcode = input.value.trim(); input.value = "";
    if (barcode) deskPost("item", { barcode });
  });
  return form;
}

function overrideBox(line) {
  if (desk.override !== line.barcode) {
    return button(t("ui.desk.override.ask"), () => { desk.override = line.barcode; draw(); },
      { class: "tab override", "data-override": line.barcode });
  }
  const reason = el("input", { id: "desk-override-reason", maxlength: "200", "aria-label": t("ui.desk.override.reason") });
  const form = el("form", { class: "desk-override" }, el("label", { for: "desk-override-reason", text: t("ui.desk.override.reason") }), reason,
    el("button", { type: "submit", id: "desk-override-go", class: "primary" }, t("ui.desk.override.go")));
  form.addEventListener("submit", (e) => {
    e.preventDefault(); desk.override = null;
    const why = reason.value; reason.value = "";
    deskPost("override", { barcode: line.barcode, reason: why });
  });
  return form;
}

function deskLend(view) {
  const s = view.session;
  if (!s) {
    return [el("h1", { id: "heading", text: t("ui.desk.lend.heading") }),
      el("p", { class: "instruction" }, icon("card"), el("span", { text: t("ui.desk.home.tap_patron") })), typedCard(), typedBarcode()];
  }
  const acct = s.account || {};
  const lines = s.lines.map((line) => {
    const item = drawLine(line);
    if (line.state === "not_lent" && line.barcode) item.append(overrideBox(line));
    return item;
  });
  return [
    el("h1", { id: "heading", text: s.card ? t("ui.desk.lend.for", { name: acct.name || s.card }) : t("ui.session.returning") }),
    el("ul", { class: "lines", id: "lines" }, lines),
    lines.length ? null : el("p", { class: "instruction" }, icon("book"), el("span", { text: t("ui.desk.lend.place") })),
    typedBarcode(),
    el("div", { class: "tabs" },
      button(t("ui.mode.return"), () => post("/api/press", { action: "return" }), { class: "tab", id: "desk-mode-return" }),
      button(t("ui.desk.lend.done"), () => post("/api/press", { action: "finish" }), { class: "finish primary", id: "desk-finish" })),
  ];
}

const FIELDS = [
  ["name", "text"], ["id_type", "select"], ["id_number", "text"], ["phone", "tel"], ["village", "text"],
  ["address", "text"], ["patron_type", "select"], ["guardian_name", "text"], ["guardian_relation", "select"],
];
const CHOICES = {
  id_type: ["resident_id", "passport", "hmt_residence_permit", "hk_macau_permit", "taiwan_permit", "foreign_permanent", "other"],
  patron_type: ["adult", "child", "student", "elderly"],
  guardian_relation: ["", "parent", "grandparent", "relative", "other"],
};
const CHOICE_TEXTS = { id_type: "registration.id_types", patron_type: "registration.patron_types", guardian_relation: "registration.relations" };

function problemsByField(reg) {
  const out = {};
  for (const p of (reg && reg.problems) || []) if (!out[p.field]) out[p.field] = t(p.message_key, p.params);
  return out;
}

function registerForm(d) {
  const problems = problemsByField(d.registration);
  const rows = FIELDS.map(([name, kind]) => {
    const id = `reg-${name}`;
    const value = desk.form[name] || "";
    let input;
    if (kind === "select") {
      input = el("select", { id, name }, CHOICES[name].map((c) =>
        el("option", { value: c, selected: c === value, text: c ? t(`${CHOICE_TEXTS[name]}.${c}`) : "—" })));
    } else {
      input = el("input", { id, name, type: kind, value, autocomplete: "off" });
    }
    input.addEventListener("input", () => { desk.form[name] = input.value; });
    input.addEventListener("change", () => { desk.form[name] = input.value; });
    const error = problems[name] ? el("span", { class: "field-problem", id: `${id}-problem`, text: problems[name] }) : null;
    if (error) { input.setAttribute("aria-invalid", "true"); input.setAttribute("aria-describedby", `${id}-problem`); }
    return el("div", { class: `field ${error ? "invalid" : ""}`, "data-field": name },
      el("label", { for: id, text: t(`ui.desk.form.${name}`) }), input, error);
  });
  const consent = el("input", { id: "reg-consent", type: "checkbox", checked: desk.form.consent === true });
  consent.addEventListener("change", () => { desk.form.consent = consent.checked; });
  const consentError = problems.consent ? el("span", { class: "field-problem", id: "reg-consent-problem", text: problems.consent }) : null;
  rows.push(el("div", { class: `field consent ${consentError ? "invalid" : ""}`, "data-field": "consent" }, consent,
    el("label", { for: "reg-consent", text: t("ui.desk.form.consent") }), consentError));
  const form = el("form", { id: "reg-form", class: "reg-form", novalidate: true, "data-card": d.blank_card ? "ready" : "none" }, rows,
    el("button", { type: "submit", id: "reg-submit", class: "primary" }, t("ui.desk.form.submit")));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    for (const [name] of FIELDS) { const node = document.getElementById(`reg-${name}`); desk.form[name] = node.value; }
    desk.form.consent = consent.checked;
    deskPost("register", { ...desk.form, consent: desk.form.consent === true });
  });
  const count = Object.keys(problems).length;
  return [
    el("h1", { id: "heading", text: t("ui.desk.register.heading") }),
    supplyNote(d),
    d.blank_card ? el("p", { class: "hint", id: "reg-card-ready", text: t("ui.desk.register.card_ready") }) : null,
    count ? el("p", { class: "alert", id: "reg-problems", role: "alert" }, icon("warn"), el("span", { text: t("registration.refused", { count }) })) : null,
    d.registration && d.registration.message ? el("p", { class: "alert", role: "alert" }, icon("warn"), el("span", { text: t(d.registration.message.key, d.registration.message.params) })) : null,
    form,
  ];
}

function registerCard(d) {
  const reg = d.registration;
  const msg = reg.message ? t(reg.message.key, reg.message.params) : "";
  const iconName = reg.state === "failed" ? "no" : "wait";
  return [
    el("h1", { id: "heading", text: t("ui.desk.register.card_heading", { name: reg.name || desk.form.name || "" }) }),
    el("p", { class: `instruction reg-${reg.state}`, id: "reg-card", "data-state": reg.state, role: "status" }, icon(iconName), el("span", { text: msg })),
    button(t("ui.desk.register.back"), () => deskPost("register_cancel"), { class: "tab", id: "reg-cancel" }),
  ];
}

function registerIssued(d) {
  const done = d.registration.issued;
  return [
    el("h1", { id: "heading", text: t("ui.desk.register.issued", { name: done.name }) }),
    el("dl", { class: "issued", id: "reg-issued" },
      el("dt", { text: t("ui.desk.issued.card") }), el("dd", { id: "reg-card-number", text: done.card_number }),
      el("dt", { text: t("ui.desk.issued.id") }), el("dd", { text: done.id_masked }),
      el("dt", { text: t("ui.desk.issued.expires") }), el("dd", { text: done.expires_on }),
      el("dt", { text: t("ui.desk.issued.slip") }), el("dd", { id: "reg-slip", "data-slip": done.slip, text: t(`ui.desk.slip.${done.slip}`) })),
    el("p", { class: "instruction" }, icon("ok"), el("span", { text: t("ui.desk.register.lend_now") })),
    button(t("ui.desk.register.another"), () => { desk.form = {}; deskPost("page", { page: "register" }); }, { class: "tab", id: "reg-another" }),
  ];
}

function deskRegister(d) {
  const reg = d.registration;
  if (!reg || reg.state === "form") return registerForm(d);
  if (reg.state === "issued") return registerIssued(d);
  return registerCard(d);
}

function deskScreen(view) {
  const d = view.desk;
  if (d.state === "pin") return [deskAnswer(), ...deskPinScreen(d)];
  const pages = { home: deskHome, lend: () => deskLend(view), register: deskRegister };
  const page = view.session && d.page !== "register" ? "lend" : d.page;
  return [deskBar(d), deskAnswer(), ...pages[page](d)];
}

function laptopScreen() {
  // The van's laptop (desk.laptop_listen) until staff sign in at the kiosk.
  return [
    el("h1", { id: "heading", text: t("ui.desk.laptop.heading") }),
    el("p", { class: "instruction", id: "laptop-sign-in" }, icon("card"), el("span", { text: t("ui.desk.laptop.sign_in") })),
  ];
}
