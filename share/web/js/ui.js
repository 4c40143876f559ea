// The web app's building blocks, shared by its views (app.js, and the staff views in their own
// modules): elements built with the DOM (never from HTML strings, so nothing a user typed can run
// as script), tables, labelled fields, the messages (#notice, #problem), and the controls that
// make a change: busy while it runs, "Still trying…" while it is sent again, its refusal shown as
// the API's own sentence.

import * as api from "./api.js";
import { stillTrying } from "./retry.js";

// How the current view is drawn again after a change (app.js sets it: its `render`).
let redrawView = async () => {};
export function onRedraw(fn) {
  redrawView = fn;
}

export const $ = (selector) => document.querySelector(selector);
export const main = () => $("#main");

// h("button", {onclick, class: "x"}, "text", child...): an element.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (value === true) el.setAttribute(name, "");
    else el.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

let fieldCount = 0;
export function field(label, input) {
  input.id = input.id || `field-${++fieldCount}`;
  return h("div", { class: "field" }, h("label", { for: input.id }, label), input);
}

export function table(caption, headings, rows, empty) {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  // Each cell names its column, shown before it when a phone-width window stacks the rows.
  for (const row of rows) {
    [...row.children].forEach((cell, i) => headings[i] && cell.setAttribute("data-label", headings[i]));
  }
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      {},
      h("caption", {}, caption),
      h("thead", {}, h("tr", {}, headings.map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows),
    ),
  );
}

export const plural = (n, one, many) => `${n} ${n === 1 ? one : many}`;
export const label = (s) => `${s.course_code}-${String(s.section_number).padStart(2, "0")}`;

// Messages: a success in #notice (polite), a refusal in #problem (an alert), never both.
export function notify(text) {
  $("#problem").textContent = "";
  $("#notice").classList.remove("trying");
  $("#notice").textContent = text;
}

export function complain(error) {
  $("#notice").classList.remove("trying");
  $("#notice").textContent = "";
  $("#problem").textContent = error instanceof api.ApiError ? error.message : String(error);
}

export function clearMessages() {
  $("#notice").classList.remove("trying");
  $("#notice").textContent = "";
  $("#problem").textContent = "";
}

// "Still trying…" for the reads behind a view, which have no button of their own: in #notice,
// until a message takes its place or the reads are done (doneTrying).
export function showTrying({ retry, retries }) {
  $("#notice").classList.add("trying");
  $("#notice").textContent = stillTrying(null, retry, retries);
}

export function doneTrying() {
  if ($("#notice").classList.contains("trying")) clearMessages();
}

// Run an action: its refusal is shown as the API's sentence; returns whether it succeeded.
export async function attempt(action) {
  try {
    await action();
    return true;
  } catch (error) {
    complain(error);
    return false;
  } finally {
    doneTrying();
  }
}

// A change a person asked for with `control` (a button, or a form's submit button):
// `change(onRetry)` makes it, handing onRetry to its write. While it runs the control is busy and
// a second press does nothing (it would be a second request, with a key of its own); while the
// write is sent again, "Still trying…" shows beside the control, in a live region. Its refusal,
// or that its outcome is not known, is shown in #problem; returns whether it succeeded.
export async function act(control, change) {
  if (control.getAttribute("aria-busy") === "true") return false;
  const what = control.getAttribute("aria-label") || control.textContent;
  const status = h("span", { class: "trying", role: "status" });
  control.setAttribute("aria-busy", "true");
  control.after(status);
  try {
    await change(({ retry, retries }) => (status.textContent = stillTrying(what, retry, retries)));
    return true;
  } catch (error) {
    complain(error);
    return false;
  } finally {
    control.removeAttribute("aria-busy");
    status.remove();
  }
}

export function confirmed(question, yes) {
  const dialog = $("#confirm");
  $("#confirm-text").textContent = question;
  $("#confirm-yes").textContent = yes;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "yes"), { once: true });
    dialog.returnValue = "";
    dialog.showModal();
    $("#confirm-no").focus();
  });
}

// A button that asks first (`question`, answered with `yes`), then DELETEs `path` and, once
// that is done, draws the view again (`redraw`) and says `done`.
export function deleteButton({ text, name, question, yes, path, done, redraw = () => redrawView() }) {
  return h(
    "button",
    {
      class: "danger",
      "aria-label": name,
      onclick: async (event) => {
        const button = event.currentTarget;
        if (!(await confirmed(question, yes))) return;
        if (await act(button, (onRetry) => api.enroll(path, { method: "DELETE", onRetry }))) {
          await attempt(redraw);
          notify(done);
        }
      },
    },
    text,
  );
}

export function heading(text) {
  return h("h2", { tabindex: "-1", id: "view-title" }, text);
}

// A moment as the person reads it, in their own time zone.
export const when = (at) => new Date(at).toLocaleString();

// The API's 422 beside the fields it names: each of `error.errors` ({field, message}) marks the
// controls of `form` named so ("reason"; "waives.0" names the "waives" checkboxes) aria-invalid,
// described by the message shown under them; one naming no control (the body as a whole) is
// shown above the form's button. The marks of the last try go first; no error: only that.
let errorCount = 0;
export function fieldErrors(form, error) {
  for (const shown of form.querySelectorAll(".field-error")) shown.remove();
  for (const control of form.querySelectorAll("[aria-invalid]")) {
    control.removeAttribute("aria-invalid");
    const rest = (control.getAttribute("aria-describedby") || "")
      .split(" ")
      .filter((id) => id && !id.startsWith("field-error-"));
    if (rest.length) control.setAttribute("aria-describedby", rest.join(" "));
    else control.removeAttribute("aria-describedby");
  }
  const messages = new Map(); // the control's name ("" for none) -> its messages
  for (const { field: name, message } of error?.errors || []) {
    const key = String(name).split(".")[0];
    const named = form.querySelector(`[name="${CSS.escape(key)}"]`) ? key : "";
    messages.set(named, [...(messages.get(named) || []), message]);
  }
  for (const [name, said] of messages) {
    const note = h("p", { class: "field-error", id: `field-error-${++errorCount}` }, said.join("; "));
    if (!name) {
      form.querySelector("button[type=submit]").before(note);
      continue;
    }
    const controls = [...form.querySelectorAll(`[name="${CSS.escape(name)}"]`)];
    for (const control of controls) {
      control.setAttribute("aria-invalid", "true");
      const ids = control.getAttribute("aria-describedby");
      control.setAttribute("aria-describedby", ids ? `${ids} ${note.id}` : note.id);
    }
    (controls[0].closest("fieldset") || controls[0].closest(".field") || controls[0]).append(note);
  }
  return messages.size;
}

// A form in a card: a field for each [label, control] (an element as it is: a fieldset), and its
// button; `submit(onRetry)` makes the change (see act) and returns the notice to show once the
// view is drawn again; a refusal is shown instead, and a 422 beside its fields (fieldErrors).
// `change(onRetry)` (see act), its 422 shown beside the fields of `form` it names, the marks of
// a try before taken away first.
export function withFieldErrors(form, change) {
  return async (onRetry) => {
    fieldErrors(form, null);
    try {
      return await change(onRetry);
    } catch (error) {
      fieldErrors(form, error);
      throw error;
    }
  };
}

export function cardForm(id, title, button, fields, submit) {
  const form = h(
    "form",
    { class: "card", "aria-labelledby": id },
    h("h3", { id }, title),
    fields.map((f) => (f instanceof Node ? f : field(f[0], f[1]))),
    h("button", { type: "submit" }, button),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    let notice;
    const button = event.submitter || form.querySelector("button[type=submit]");
    const change = withFieldErrors(form, async (onRetry) => (notice = await submit(onRetry)));
    if (await act(button, change)) {
      await redrawView();
      notify(notice);
    }
  });
  return form;
}
