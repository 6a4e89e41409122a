// Watches /board/live with the browser's EventSource: it reconnects by itself and sends
// Last-Event-ID, so nothing is missed across a server restart. Text is always set with
// textContent, never as HTML: bodies carry what members wrote.
"use strict";

const NAMES = ["categoryCreated", "postCreated", "postEdited", "postDeleted",
  "commentAdded", "commentDeleted", "reset"];
const list = document.getElementById("messages");
const state = document.getElementById("state");
const picker = document.getElementById("category");
let source = null;

function line(name, data) {
  switch (name) {
    case "categoryCreated": return `New category ${data.name}`;
    case "postCreated": return `${data.author.nickname ?? "someone"} posted “${data.title}”`;
    case "postEdited": return `Post “${data.title}” was edited`;
    case "postDeleted": return `A post was deleted`;
    case "commentAdded": return `${data.author.nickname ?? "someone"}: ${data.content}`;
    case "commentDeleted": return `A comment was deleted`;
    default: return "Too much was missed: reload the page";
  }
}

function show(name, event) {
  const data = JSON.parse(event.data);
  const item = document.createElement("li");
  item.className = name;
  item.dataset.id = event.lastEventId;
  const text = document.createElement("div");
  text.textContent = line(name, data);
  const what = document.createElement("div");
  what.className = "what";
  what.textContent = `${name} · ${data.eventPosition ?? ""}`;
  item.append(text, what);
  list.prepend(item);
}

function watch(categoryId) {
  if (source) source.close();
  list.replaceChildren();
  const query = categoryId ? `?categoryId=${encodeURIComponent(categoryId)}` : "";
  source = new EventSource(`/board/live${query}`);
  source.onopen = () => { state.textContent = "live"; state.className = "open"; };
  source.onerror = () => { state.textContent = "reconnecting"; state.className = ""; };
  for (const name of NAMES) source.addEventListener(name, (event) => show(name, event));
}

async function categories() {
  const answer = await fetch("/board/categories", { headers: { Accept: "application/json" } });
  if (!answer.ok) return;
  for (const category of (await answer.json()).categories) {
    const option = document.createElement("option");
    option.value = category.categoryId;
    option.textContent = category.name;
    picker.append(option);
  }
}

const wanted = new URLSearchParams(location.search).get("categoryId");
picker.addEventListener("change", () => {
  const url = new URL(location);
  if (picker.value) url.searchParams.set("categoryId", picker.value);
  else url.searchParams.delete("categoryId");
  history.replaceState(null, "", url);
  watch(picker.value);
});
categories().finally(() => {
  if (wanted) picker.value = wanted;
  watch(wanted ?? "");
});
