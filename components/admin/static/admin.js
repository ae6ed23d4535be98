// cinema admin console: progressive enhancement only; every form works without it.
// - Pickers: a search input with data-picker="genres|persons" suggests matches from
//   /admin/api/{kind}?query= as you type and puts the picked id into the form's
//   hidden input (data-picked). Without JavaScript the typed name is resolved by the
//   server.
// - Forms with data-confirm ask before they submit.
// - Moments (<time datetime data-precision>) show in the reader's time zone and locale;
//   the server's UTC text stays as their tooltip.
"use strict";

function debounce(fn, ms) {
  let timer;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

function wirePicker(input) {
  const kind = input.dataset.picker;
  const form = input.form;
  const hidden = form.querySelector("input[data-picked]");
  const list = document.getElementById(input.getAttribute("list"));
  let matches = [];
  const search = debounce(async () => {
    const text = input.value.trim();
    if (text.length < 1) { return; }
    const response = await fetch(`/admin/api/${kind}?query=${encodeURIComponent(text)}`, {
      credentials: "same-origin", headers: { "Accept": "application/json" },
    });
    if (!response.ok) { return; }
    const page = await response.json();
    matches = page.items || [];
    list.replaceChildren(...matches.map((item) => {
      const option = document.createElement("option");
      option.value = item.name;
      return option;
    }));
  }, 150);
  input.addEventListener("input", () => {
    const picked = matches.find((item) => item.name === input.value);
    hidden.value = picked ? picked.id : "";
    search();
  });
}

const MOMENT_FORMATS = {
  day: { dateStyle: "medium" },
  minute: { dateStyle: "medium", timeStyle: "short" },
  second: { dateStyle: "medium", timeStyle: "medium" },
};

function showLocalTime(element) {
  const at = new Date(element.dateTime);
  if (Number.isNaN(at.getTime())) { return; }
  const format = MOMENT_FORMATS[element.dataset.precision] || MOMENT_FORMATS.minute;
  element.title = element.textContent.trim();
  element.textContent = new Intl.DateTimeFormat(undefined, format).format(at);
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("time[datetime]").forEach(showLocalTime);
  document.querySelectorAll("input[data-picker]").forEach(wirePicker);
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) { event.preventDefault(); }
    });
  });
});
