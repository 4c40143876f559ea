// The registrar's accounts (issue 28), through the auth gateway: find accounts (GET /accounts:
// text in a name, username or email address; role; active or disabled), make a staff account with its roles (POST /register with the
// registrar's token, which may grant any roles, audited as account.create), and change one:
// names, email address, roles, disabled or enabled (PATCH /accounts/{id}), a new password (PUT
// /accounts/{id}/password). Every change is in the Audit trail's "Account changes".

import * as api from "./api.js";
import { $, act, attempt, cardForm, field, h, heading, notify, table, withFieldErrors } from "./ui.js";

const ROLES = ["student", "instructor", "registrar"];
const PAGE = 50;

// What the view shows again after a change redraws it: the last search and the open account.
const search = { q: "", role: "", disabled: "" };
// The open account as the write that last changed it answered: a re-read could reach the other
// auth replica before that write does, and show the account as it was ("Active" just after
// Disable).
let editing = null;

const fullName = (a) => `${a.first_name} ${a.last_name}`;

// A new password as the API takes it: 12 to 128 characters (app/auth/models.py NewPassword).
const newPassword = () =>
  h("input", {
    name: "password",
    type: "password",
    required: true,
    minlength: "12",
    maxlength: "128",
    autocomplete: "new-password",
  });

// A group of labelled checkboxes, one per role; `checked` the roles ticked.
function roleBoxes(legend, checked) {
  const boxes = ROLES.map((role) =>
    h("input", { type: "checkbox", name: "roles", value: role, checked: checked.includes(role) }),
  );
  const group = h(
    "fieldset",
    { class: "checks" },
    h("legend", {}, legend),
    boxes.map((box) => field(box.value[0].toUpperCase() + box.value.slice(1), box)),
  );
  return { group, picked: () => boxes.filter((b) => b.checked).map((b) => b.value) };
}

export async function accountsView() {
  const q = h("input", { type: "search", name: "q", value: search.q, maxlength: "254" });
  const role = h(
    "select",
    { name: "role" },
    h("option", { value: "" }, "Any role"),
    ROLES.map((r) => h("option", { value: r, selected: r === search.role }, r)),
  );
  const disabled = h(
    "select",
    { name: "disabled" },
    h("option", { value: "" }, "Active or disabled"),
    h("option", { value: "false", selected: search.disabled === "false" }, "Active only"),
    h("option", { value: "true", selected: search.disabled === "true" }, "Disabled only"),
  );
  const results = h("div", { id: "account-results" });
  const more = h("button", { type: "button", hidden: true }, "More accounts");
  const detail = h("div", { id: "account-detail" });
  let found = [];
  const query = (after) => {
    const params = new URLSearchParams({ limit: String(PAGE) });
    if (search.q) params.set("q", search.q);
    if (search.role) params.set("role", search.role);
    if (search.disabled) params.set("disabled", search.disabled);
    if (after) params.set("after", after);
    return `/accounts?${params}`;
  };
  const show = () => {
    const rows = found.map((a) =>
      h(
        "tr",
        {},
        h("th", { scope: "row" }, fullName(a)),
        h("td", {}, a.username),
        h("td", { class: "email" }, a.email),
        h("td", {}, a.roles.join(", ")),
        h("td", {}, a.disabled ? "Disabled" : "Active"),
        h(
          "td",
          {},
          h(
            "button",
            {
              type: "button",
              "aria-label": `Edit ${a.username}`,
              onclick: () => {
                editing = a;
                detail.replaceChildren(accountPanel(a));
                $("#account-title").focus();
              },
            },
            "Edit",
          ),
        ),
      ),
    );
    results.replaceChildren(
      table(
        `Accounts (${found.length}${more.hidden ? "" : "+"})`,
        ["Name", "Username", "Email", "Roles", "Status", ""],
        rows,
        "No account matches.",
      ),
    );
  };
  const load = async () => {
    found = await api.auth(query());
    more.hidden = found.length < PAGE;
    show();
  };
  more.addEventListener("click", () =>
    attempt(async () => {
      const page = await api.auth(query(found[found.length - 1].id));
      found = found.concat(page);
      more.hidden = page.length < PAGE;
      show();
    }),
  );
  const form = h(
    "form",
    { class: "filters", role: "search", "aria-label": "Find accounts" },
    field("Name, username or email contains", q),
    field("Role", role),
    field("Status", disabled),
    h("button", { type: "submit" }, "Find accounts"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    Object.assign(search, { q: q.value.trim(), role: role.value, disabled: disabled.value });
    attempt(load);
  });
  await attempt(load);
  if (editing !== null) detail.replaceChildren(accountPanel(editing)); // drawn again after a change
  return [heading("Accounts"), form, results, more, detail, h("div", { class: "forms" }, newAccountForm())];
}

// A staff account made by the registrar: POST /register with their token grants any roles.
function newAccountForm() {
  const username = h("input", {
    name: "username",
    required: true,
    minlength: "3",
    maxlength: "32",
    pattern: "[A-Za-z0-9._\\-]{3,32}",
    autocomplete: "off",
  });
  const first = h("input", { name: "first_name", required: true, maxlength: "64" });
  const last = h("input", { name: "last_name", required: true, maxlength: "64" });
  const email = h("input", { name: "email", type: "email", maxlength: "254" });
  const password = newPassword();
  const roles = roleBoxes("Roles", ["instructor"]);
  return cardForm(
    "new-account",
    "New account",
    "Create account",
    [
      ["Username (3-32 of a-z 0-9 . _ -)", username],
      ["First name", first],
      ["Last name", last],
      ["Email (empty: username@ the university's domain)", email],
      ["Password (at least 12 characters)", password],
      roles.group,
    ],
    async (onRetry) => {
      const body = {
        username: username.value.trim(),
        first_name: first.value.trim(),
        last_name: last.value.trim(),
        password: password.value,
        roles: roles.picked(),
      };
      if (email.value.trim()) body.email = email.value.trim();
      const made = await api.auth("/register", { method: "POST", json: body, onRetry });
      editing = { ...made, disabled: false };
      return `Created ${made.username} (${made.roles.join(", ")}), ${made.email}.`;
    },
  );
}

// One account's changes, each its own small form: names, email, roles, disable or enable,
// password. A change draws this panel again from the account the change answered, and its row.
function accountPanel(a) {
  const name = a.username;
  const change = async (form, control, body, done) => {
    let changed; // the account as the primary answered the change
    const patch = async (onRetry) =>
      (changed = await api.auth(`/accounts/${a.id}`, { method: "PATCH", json: body, onRetry }));
    if (await act(control, form ? withFieldErrors(form, patch) : patch)) {
      editing = changed;
      $("#account-detail").replaceChildren(accountPanel(changed));
      refreshRow(changed);
      notify(done);
    }
  };
  const form = (fields, button, body, done) => {
    const f = h("form", {}, ...fields, h("button", { type: "submit" }, button));
    f.addEventListener("submit", (event) => {
      event.preventDefault();
      change(f, event.submitter || f.querySelector("button"), body(), done());
    });
    return f;
  };
  const first = h("input", { name: "first_name", value: a.first_name, required: true, maxlength: "64" });
  const last = h("input", { name: "last_name", value: a.last_name, required: true, maxlength: "64" });
  const email = h("input", { name: "email", type: "email", value: a.email, maxlength: "254" });
  const roles = roleBoxes(`Roles of ${name}`, a.roles);
  const password = newPassword();
  const passwordForm = h(
    "form",
    {},
    field("New password (at least 12 characters)", password),
    h("button", { type: "submit" }, "Set password"),
  );
  passwordForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const put = (onRetry) =>
      api.auth(`/accounts/${a.id}/password`, {
        method: "PUT",
        json: { password: password.value },
        onRetry,
      });
    const button = event.submitter || passwordForm.querySelector("button");
    if (await act(button, withFieldErrors(passwordForm, put))) {
      password.value = "";
      notify(`New password set for ${name}: their sessions have ended; they sign in with it.`);
    }
  });
  return h(
    "section",
    { class: "card", "aria-labelledby": "account-title" },
    h("h3", { id: "account-title", tabindex: "-1" }, `${fullName(a)} (${name})`),
    h("p", {}, `${a.disabled ? "Disabled" : "Active"}; ${a.roles.join(", ")}; ${a.email}.`),
    form(
      [field("First name", first), field("Last name", last)],
      "Change names",
      () => ({ first_name: first.value.trim(), last_name: last.value.trim() }),
      () => `${name} is now ${first.value.trim()} ${last.value.trim()}.`,
    ),
    form(
      [field("Email (empty: the default address)", email)],
      "Change email",
      () => ({ email: email.value.trim() || null }),
      () => `Email address of ${name} changed.`,
    ),
    form(
      [roles.group],
      "Change roles",
      () => ({ roles: roles.picked() }),
      () => `${name} now holds ${roles.picked().join(", ") || "no role"}; they sign in again.`,
    ),
    h(
      "button",
      {
        type: "button",
        class: a.disabled ? undefined : "danger",
        onclick: (event) =>
          change(
            null,
            event.currentTarget,
            { disabled: !a.disabled },
            a.disabled ? `${name} is enabled again.` : `${name} is disabled: they cannot sign in.`,
          ),
      },
      a.disabled ? `Enable ${name}` : `Disable ${name}`,
    ),
    passwordForm,
  );
}

// The account's row in the results, brought up to date in place after a change.
function refreshRow(a) {
  const button = document.querySelector(`#account-results button[aria-label="Edit ${a.username}"]`);
  const row = button && button.closest("tr");
  if (!row) return;
  const cells = row.children;
  cells[0].textContent = fullName(a);
  cells[2].textContent = a.email;
  cells[3].textContent = a.roles.join(", ");
  cells[4].textContent = a.disabled ? "Disabled" : "Active";
}
