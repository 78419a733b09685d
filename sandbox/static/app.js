// The sandbox chat page: a window onto the real bot. Everything shown comes from /api/history,
// the stand-in Bot API's record of the chats; nothing here composes a reply.
"use strict";

(function () {
  // ------------------------------------------------------------------ Telegram HTML, sanitised

  // Telegram's tags (and the synonyms Telegram accepts) -> the element shown. Anything else,
  // tags, attributes and all, is shown as text.
  const TAGS = {
    b: "b", strong: "b", i: "i", em: "i", u: "u", ins: "u", s: "s", strike: "s", del: "s",
    code: "code", pre: "pre", a: "a", blockquote: "blockquote",
  };
  const TAG_RE = /<(\/?)([A-Za-z][A-Za-z0-9-]*)((?:\s[^<>]*)?)>/y;
  const HREF_RE = /(?:^|\s)href\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))/i;
  const SAFE_SCHEMES = new Set(["http:", "https:", "mailto:", "tg:"]);

  function decodeEntities(text) {
    return text.replace(/&(lt|gt|amp|quot|#(\d{1,7})|#[xX]([0-9A-Fa-f]{1,6}));/g, (all, name, dec, hex) => {
      if (name === "lt") return "<";
      if (name === "gt") return ">";
      if (name === "amp") return "&";
      if (name === "quot") return '"';
      const code = dec !== undefined ? parseInt(dec, 10) : parseInt(hex, 16);
      return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : all;
    });
  }

  function safeHref(raw) {
    if (raw === undefined) return null;
    try {
      const url = new URL(decodeEntities(raw), window.location.href);
      return SAFE_SCHEMES.has(url.protocol) ? url.href : null;
    } catch (e) {
      return null;
    }
  }

  // Telegram HTML -> a DocumentFragment built from elements and text nodes only (never innerHTML).
  function renderTelegramHtml(source) {
    const root = document.createDocumentFragment();
    const stack = [{ name: null, node: root }];
    let text = "";
    const top = () => stack[stack.length - 1].node;
    const flush = () => {
      if (text) top().appendChild(document.createTextNode(decodeEntities(text)));
      text = "";
    };
    let i = 0;
    while (i < source.length) {
      const lt = source.indexOf("<", i);
      if (lt < 0) {
        text += source.slice(i);
        break;
      }
      text += source.slice(i, lt);
      TAG_RE.lastIndex = lt;
      const m = TAG_RE.exec(source);
      const name = m ? TAGS[m[2].toLowerCase()] : undefined;
      if (!m || !name) {
        text += "<";
        i = lt + 1;
        continue;
      }
      i = lt + m[0].length;
      if (m[1]) {
        let k = stack.length - 1;
        while (k > 0 && stack[k].name !== name) k--;
        if (k > 0) {
          flush();
          stack.length = k;
        } else {
          text += m[0]; // a closing tag with nothing open: shown as written
        }
        continue;
      }
      flush();
      const el = document.createElement(name);
      if (name === "a") {
        const found = HREF_RE.exec(m[3] || "");
        const href = found ? safeHref(found[1] ?? found[2] ?? found[3]) : null;
        if (href) {
          el.href = href;
          el.target = "_blank";
          el.rel = "noopener noreferrer";
        }
      }
      top().appendChild(el);
      stack.push({ name, node: el });
    }
    flush();
    return root;
  }

  // ------------------------------------------------------------------ state

  const state = {
    me: null, member: null, bot: null, lang: "zh",
    chats: new Map(), // id -> {info, messages: Map(id -> msg), nodes: Map(id -> element), unread}
    order: [],
    current: null,
    seq: 0,
    instance: null,
    commands: [],
    pending: new Map(), // callback query id -> {chat, message, data, timer}
    typing: new Map(), // chat id -> timer
    editing: null, // the message being edited: {chat, id, as, text, draft}
  };

  const $ = (id) => document.getElementById(id);
  const el = (tag, cls, text) => {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  };

  async function api(path, body) {
    const init = body === undefined ? {} : {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    };
    const response = await fetch(path, init);
    let data = null;
    try {
      data = await response.json();
    } catch (e) {
      data = null;
    }
    if (!response.ok) {
      const error = new Error((data && data.error) || `${response.status} ${response.statusText}`);
      error.status = response.status;
      throw error;
    }
    return data;
  }

  // ------------------------------------------------------------------ toasts and alerts

  let toastTimer = null;
  function toast(text, ms = 3500) {
    const box = $("toast");
    box.textContent = text;
    box.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { box.hidden = true; }, ms);
  }

  function alertBox(text) {
    $("alert-text").textContent = text;
    $("alert").hidden = false;
    $("alert-ok").focus();
  }

  // ------------------------------------------------------------------ rendering

  function hhmm(unix) {
    const d = new Date(unix * 1000);
    return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hour12: false });
  }

  function chatInfo(id) {
    const chat = state.chats.get(id);
    return chat ? chat.info : null;
  }

  function isMine(msg) {
    return state.me && msg.from.id === state.me.id;
  }

  // ------------------------------------------------------------------ editing your own messages

  // As in Telegram: the sender may edit their own text messages for 48 hours (not a result sent
  // via a bot); ↑ in an empty message box edits the last one, ✕ or Esc cancels.
  const EDIT_TIME_LIMIT = 48 * 3600;

  // Who types in the current chat: You, or in the group the member picked under "Send as".
  function typistId() {
    return sendAs() === "member" && state.member ? state.member.id : state.me && state.me.id;
  }

  function canEdit(msg) {
    return msg.chat === state.current && !msg.deleted && !msg.from.is_bot && msg.from.id === typistId()
      && !msg.via_bot && !msg.photo && !msg.document && typeof msg.text === "string" && msg.text !== ""
      && Date.now() / 1000 - msg.date < EDIT_TIME_LIMIT;
  }

  function editButton(msg) {
    const button = el("button", "edit-btn", "✎ edit");
    button.type = "button";
    button.title = "Edit this message (↑ in the empty message box edits your last one)";
    button.setAttribute("aria-label", "Edit message");
    button.addEventListener("click", (e) => {
      e.stopPropagation();
      startEdit(msg);
    });
    return button;
  }

  function lastEditable() {
    const chat = state.chats.get(state.current);
    if (!chat) return null;
    const msgs = [...chat.messages.values()].filter(canEdit);
    return msgs.length ? msgs[msgs.length - 1] : null;
  }

  function markEdited(chatId, messageId) {
    const chat = state.chats.get(chatId);
    const node = chat && chat.nodes.get(messageId);
    if (node) node.classList.toggle("being-edited", Boolean(state.editing && state.editing.id === messageId
      && state.editing.chat === chatId));
  }

  function startEdit(msg) {
    const input = $("input");
    const before = state.editing;
    const draft = before ? before.draft : input.value;
    state.editing = { chat: msg.chat, id: msg.id, as: sendAs(), text: msg.text, draft };
    if (before) markEdited(before.chat, before.id);
    markEdited(msg.chat, msg.id);
    $("edit-old").textContent = msg.text;
    $("edit-bar").hidden = false;
    $("chat").classList.add("editing");
    $("send-button").textContent = "Save";
    $("send-button").title = "Save the edit";
    $("menu").hidden = true;
    hideInline();
    input.value = msg.text;
    input.focus();
    input.setSelectionRange(input.value.length, input.value.length);
  }

  // Closes the editor; the message box gets back what was typed before editing began.
  function stopEdit() {
    const before = state.editing;
    if (!before) return;
    state.editing = null;
    markEdited(before.chat, before.id);
    $("edit-bar").hidden = true;
    $("edit-old").textContent = "";
    $("chat").classList.remove("editing");
    $("send-button").textContent = "Send";
    $("send-button").title = "Send";
    $("menu").hidden = true;
    $("input").value = before.draft;
  }

  async function saveEdit(text) {
    const target = state.editing;
    text = text.trim();
    if (!text) {
      toast("A message cannot be empty: press Esc to cancel editing");
      return;
    }
    stopEdit();
    try {
      await api("/api/edit", { chat: target.chat, message_id: target.id, text, as: target.as });
      stick = true;
    } catch (e) {
      toast(`Not edited: ${e.message}`);
      const msg = state.chats.get(target.chat).messages.get(target.id);
      if (!state.editing && target.chat === state.current && msg && canEdit(msg)) {
        startEdit(msg); // what was typed is not lost
        $("input").value = text;
      }
    }
  }

  function renderBody(msg) {
    const body = el("div", "body");
    if (msg.html !== null && msg.html !== undefined) body.appendChild(renderTelegramHtml(msg.html));
    else if (msg.text) body.textContent = msg.text;
    return body;
  }

  function renderMessage(msg) {
    const info = chatInfo(msg.chat);
    const mine = isMine(msg);
    const row = el("div", `msg ${mine ? "out" : "in"}${msg.photo ? " has-photo" : ""}`);
    row.dataset.id = String(msg.id);
    const editing = state.editing;
    if (editing && editing.chat === msg.chat && editing.id === msg.id) row.classList.add("being-edited");
    const bubble = el("div", "bubble");
    const via = msg.via_bot ? `via @${msg.via_bot.username}` : "";
    if (info && info.type !== "private" && !mine) {
      const sender = el("div", `sender${msg.from.is_bot ? " bot" : ""}`, msg.from.name);
      if (via) sender.appendChild(el("span", "via", ` ${via}`));
      bubble.appendChild(sender);
    } else if (via) {
      bubble.appendChild(el("div", "via", via)); // Telegram marks a result the user sent through the bot
    }
    if (msg.reply_to) {
      const quoted = state.chats.get(msg.chat).messages.get(msg.reply_to);
      if (quoted) bubble.appendChild(el("div", "reply", `${quoted.from.name}: ${(quoted.text || "").slice(0, 80)}`));
    }
    if (msg.photo) {
      const link = el("a", "photo");
      link.href = msg.photo.url;
      link.target = "_blank";
      link.rel = "noopener";
      link.title = "Open the full-size image";
      const img = el("img");
      img.src = msg.photo.url;
      img.alt = "chart";
      if (msg.photo.width && msg.photo.height) {
        img.width = msg.photo.width;
        img.height = msg.photo.height;
        img.style.aspectRatio = `${msg.photo.width} / ${msg.photo.height}`;
      }
      img.addEventListener("load", () => stickToBottom());
      link.appendChild(img);
      bubble.appendChild(link);
    }
    if (msg.document) {
      const doc = el("a", "document", `📄 ${msg.document.name}`);
      doc.href = msg.document.url;
      doc.download = msg.document.name;
      bubble.appendChild(doc);
    }
    const hasBody = (msg.html !== null && msg.html !== undefined) || msg.text;
    if (hasBody) bubble.appendChild(renderBody(msg));
    const meta = el("span", "meta", `${msg.edited ? "edited " : ""}${hhmm(msg.date)}`);
    bubble.appendChild(meta);
    if (canEdit(msg)) bubble.appendChild(editButton(msg));
    row.appendChild(bubble);
    if (msg.buttons && msg.buttons.length) row.appendChild(renderKeyboard(msg));
    return row;
  }

  function renderKeyboard(msg) {
    const keyboard = el("div", "keyboard");
    for (const buttons of msg.buttons) {
      const line = el("div", "krow");
      for (const b of buttons) {
        let node;
        if (b.url) {
          node = el("a", "kbtn", b.text);
          const href = safeHref(b.url);
          if (href) node.href = href;
          node.target = "_blank";
          node.rel = "noopener noreferrer";
          // t.me/<this bot>?start=X: Telegram opens the chat with the bot and sends /start X; so
          // does the page (the click handler on #messages), instead of opening t.me in a tab.
          if (href && startParameterOf(href) !== null) node.classList.add("deep-link");
        } else {
          node = el("button", "kbtn", b.text);
          node.type = "button";
          if (b.disabled || b.data === undefined) node.disabled = true;
          else node.addEventListener("click", () => tapButton(msg, b, node));
          for (const p of state.pending.values()) {
            if (p.chat === msg.chat && p.message === msg.id && p.data === b.data) node.classList.add("pending");
          }
        }
        line.appendChild(node);
      }
      keyboard.appendChild(line);
    }
    return keyboard;
  }

  function nearBottom() {
    const box = $("messages");
    return box.scrollHeight - box.scrollTop - box.clientHeight < 120;
  }

  let stick = true;
  function stickToBottom() {
    if (stick) {
      const box = $("messages");
      box.scrollTop = box.scrollHeight;
    }
  }

  function preview(msg) {
    if (!msg) return "";
    const who = isMine(msg) ? "You: " : "";
    if (msg.photo) return `${who}[Photo] ${(msg.text || "").split("\n")[0]}`;
    return who + (msg.text || "").split("\n")[0];
  }

  function renderChatList() {
    const list = $("chat-list");
    list.replaceChildren();
    for (const id of state.order) {
      const chat = state.chats.get(id);
      const item = el("li", `chat-item${id === state.current ? " active" : ""}`);
      item.dataset.chat = String(id);
      item.tabIndex = 0;
      item.appendChild(el("div", `avatar ${chat.info.type === "private" ? "bot" : "group"}`,
        chat.info.type === "private" ? "雷" : "群"));
      const text = el("div", "chat-text");
      text.appendChild(el("div", "chat-title-line", chat.info.title));
      const msgs = [...chat.messages.values()].filter((m) => !m.deleted);
      text.appendChild(el("div", "chat-preview", preview(msgs[msgs.length - 1])));
      item.appendChild(text);
      if (chat.unread) item.appendChild(el("span", "badge", String(chat.unread)));
      item.addEventListener("click", () => selectChat(id));
      item.addEventListener("keydown", (e) => { if (e.key === "Enter") selectChat(id); });
      list.appendChild(item);
    }
  }

  function subtitle(info) {
    if (info.type === "private") return state.bot ? `bot · @${state.bot.username}` : "bot";
    const names = info.members.map((m) => {
      const role = m.status === "administrator" || m.status === "creator" ? " (admin)" : "";
      return `${m.id === state.me.id ? "You" : m.name}${role}`;
    });
    return `${info.members.length} members: ${names.join(", ")}`;
  }

  function renderHeader() {
    const info = chatInfo(state.current);
    if (!info) return;
    $("chat-name").textContent = info.title;
    $("chat-sub").textContent = subtitle(info);
    const avatar = $("chat-avatar");
    avatar.className = `avatar ${info.type === "private" ? "bot" : "group"}`;
    avatar.textContent = info.type === "private" ? "雷" : "群";
    $("send-as").hidden = info.type === "private";
    const typing = state.typing.get(state.current);
    if (typing) $("chat-sub").textContent = typing.text;
  }

  function renderMessages() {
    const chat = state.chats.get(state.current);
    const box = $("messages");
    box.replaceChildren();
    chat.nodes = new Map();
    for (const msg of chat.messages.values()) {
      if (msg.deleted) continue;
      const node = renderMessage(msg);
      chat.nodes.set(msg.id, node);
      box.appendChild(node);
    }
    $("start-box").hidden = !(chat.info.type === "private" && chat.messages.size === 0);
    stick = true;
    stickToBottom();
  }

  function selectChat(id) {
    if (state.editing && state.editing.chat !== id) stopEdit(); // an edit belongs to its chat
    state.current = id;
    const chat = state.chats.get(id);
    chat.unread = 0;
    renderChatList();
    renderHeader();
    renderMessages();
    loadCommands();
    $("menu").hidden = true;
    onInlineInput($("input").value); // an inline query belongs to the chat it is typed in
    $("input").focus();
  }

  // ------------------------------------------------------------------ applying changes

  function upsert(msg) {
    const chat = state.chats.get(msg.chat);
    if (!chat) return;
    const known = chat.messages.get(msg.id);
    if (known && known.seq >= msg.seq) return;
    chat.messages.set(msg.id, msg);
    if (!known && !msg.deleted && !isMine(msg) && msg.chat !== state.current) chat.unread += 1;
    if (msg.from.is_bot) clearTyping(msg.chat);
    for (const [qid, p] of state.pending) {
      if (p.chat === msg.chat && p.message === msg.id && known) {
        clearTimeout(p.timer);
        state.pending.delete(qid);
      }
    }
    const editing = state.editing;
    if (editing && editing.chat === msg.chat && editing.id === msg.id && msg.deleted) stopEdit();
    if (msg.chat !== state.current) return;
    stick = stick || nearBottom();
    const box = $("messages");
    const old = chat.nodes.get(msg.id);
    if (msg.deleted) {
      if (old) old.remove();
      chat.nodes.delete(msg.id);
      return;
    }
    const node = renderMessage(msg);
    chat.nodes.set(msg.id, node);
    if (old) old.replaceWith(node);
    else box.appendChild(node);
    $("start-box").hidden = true;
  }

  function clearTyping(chatId) {
    const t = state.typing.get(chatId);
    if (t) {
      clearTimeout(t.timer);
      state.typing.delete(chatId);
      if (chatId === state.current) renderHeader();
    }
  }

  const ACTIONS = {
    typing: "typing…", upload_photo: "sending a photo…", upload_document: "sending a file…",
  };

  function applyNotice(n) {
    if (n.kind === "answer") {
      const p = state.pending.get(n.query_id);
      if (p) {
        clearTimeout(p.timer);
        state.pending.delete(n.query_id);
        refreshButtons(p.chat, p.message);
      }
      if (n.text) {
        if (n.alert) alertBox(n.text);
        else toast(n.text);
      }
    } else if (n.kind === "action") {
      clearTyping(n.chat);
      const label = `${state.bot ? state.bot.name : "bot"} is ${ACTIONS[n.action] || "busy…"}`;
      const timer = setTimeout(() => clearTyping(n.chat), 5000);
      state.typing.set(n.chat, { text: label, timer });
      if (n.chat === state.current) renderHeader();
    }
  }

  function refreshButtons(chatId, messageId) {
    const chat = state.chats.get(chatId);
    if (!chat || chatId !== state.current) return;
    const msg = chat.messages.get(messageId);
    const old = chat.nodes.get(messageId);
    if (msg && old) {
      const node = renderMessage(msg);
      chat.nodes.set(messageId, node);
      old.replaceWith(node);
    }
  }

  function apply(changes, initial) {
    for (const msg of changes.messages) upsert(msg);
    if (!initial) for (const n of changes.notices) applyNotice(n);
    state.seq = Math.max(state.seq, changes.seq);
    renderChatList();
    stickToBottom();
  }

  // ------------------------------------------------------------------ actions

  function sendAs() {
    const info = chatInfo(state.current);
    return info && info.type !== "private" ? $("send-as").value : "you";
  }

  async function send(text) {
    text = text.trim();
    if (!text) return;
    $("menu").hidden = true;
    try {
      await api("/api/send", { chat: state.current, text, as: sendAs() });
      stick = true;
    } catch (e) {
      toast(`Not sent: ${e.message}`);
    }
  }

  async function tapButton(msg, button, node) {
    node.classList.add("pending");
    try {
      const answer = await api("/api/callback", { chat: msg.chat, message_id: msg.id, data: button.data, as: sendAs() });
      const timer = setTimeout(() => {
        state.pending.delete(answer.query_id);
        refreshButtons(msg.chat, msg.id);
      }, 20000);
      state.pending.set(answer.query_id, { chat: msg.chat, message: msg.id, data: button.data, timer });
    } catch (e) {
      node.classList.remove("pending");
      toast(`Button not delivered: ${e.message}`);
    }
  }

  async function loadCommands() {
    const chat = state.current;
    try {
      const answer = await api(`/api/commands?chat=${encodeURIComponent(chat)}&as=${encodeURIComponent(sendAs())}`);
      if (chat === state.current) state.commands = answer.commands;
    } catch (e) {
      state.commands = [];
    }
    if (!$("menu").hidden) showMenu($("input").value.startsWith("/") ? $("input").value : "");
  }

  function showMenu(filter) {
    const menu = $("menu");
    menu.replaceChildren();
    const word = (filter || "").slice(1).split(/\s/)[0].toLowerCase();
    const shown = state.commands.filter((c) => !filter || c.command.startsWith(word));
    if (!shown.length) {
      menu.hidden = true;
      return;
    }
    for (const c of shown) {
      const item = el("button", "cmd");
      item.type = "button";
      item.setAttribute("role", "option");
      item.appendChild(el("span", "cmd-name", `/${c.command}`));
      item.appendChild(el("span", "cmd-desc", c.description));
      item.title = state.editing
        ? "Click to put it in the edited message"
        : "Click to send; Tab in the message box completes it";
      item.addEventListener("click", () => {
        if (state.editing) completeCommand(c.command);
        else send(`/${c.command}`);
      });
      menu.appendChild(item);
    }
    if (!filter && !state.editing && state.bot && state.bot.username) menu.appendChild(inlineHint());
    menu.hidden = false;
  }

  // The command replaces the first word of the message box, its arguments stay.
  function completeCommand(command) {
    const input = $("input");
    const rest = input.value.startsWith("/") ? input.value.replace(/^\S*/, "") : ` ${input.value}`;
    input.value = `/${command}${rest.trim() ? rest : " "}`;
    $("menu").hidden = true;
    input.focus();
  }

  // The menu's last line: how to try inline mode; clicking it types the query.
  function inlineHint() {
    const example = `@${state.bot.username} ratio`;
    const item = el("button", "cmd inline-hint");
    item.type = "button";
    item.setAttribute("role", "option");
    item.appendChild(el("span", "cmd-name", example));
    item.appendChild(el("span", "cmd-desc", "share a chart in this chat (inline mode)"));
    item.title = "Inline mode: type @bot and a report name in any chat, then pick a result";
    item.addEventListener("click", () => {
      const input = $("input");
      input.value = example;
      $("menu").hidden = true;
      input.focus();
      onInlineInput(example);
    });
    return item;
  }

  // ------------------------------------------------------------------ inline mode (@bot query)

  // As in Telegram: "@bot query" in the message box asks the bot (inline_query) after a pause in
  // typing; its answers show above the box, and a tapped one is sent as your message "via @bot".
  const INLINE_DEBOUNCE_MS = 350;
  const INLINE_QUERY_LIMIT = 256;
  const inline = { timer: null, token: 0 };

  // The query typed after "@bot " (Telegram needs the space), or null when the text is not one.
  function inlineQueryOf(text) {
    if (!state.bot || !state.bot.username) return null;
    const prefix = `@${state.bot.username}`;
    if (text.slice(0, prefix.length).toLowerCase() !== prefix.toLowerCase()) return null;
    const rest = text.slice(prefix.length);
    return /^\s/.test(rest) ? rest.replace(/^\s+/, "").slice(0, INLINE_QUERY_LIMIT) : null;
  }

  function hideInline() {
    clearTimeout(inline.timer);
    inline.token += 1; // an answer still on its way is dropped
    $("inline").hidden = true;
    $("inline").replaceChildren();
  }

  function inlineHead(note) {
    const head = el("div", "inline-head", `@${state.bot.username}`);
    if (note) head.appendChild(el("span", "inline-note", ` · ${note}`));
    return head;
  }

  function inlineStatus(text, isError) {
    const box = $("inline");
    box.replaceChildren(inlineHead(""), el("div", `inline-status${isError ? " error" : ""}`, text));
    box.hidden = false;
  }

  function onInlineInput(text) {
    const query = state.editing ? null : inlineQueryOf(text); // an edit is never an inline query
    clearTimeout(inline.timer);
    if (query === null) {
      hideInline();
      return;
    }
    $("menu").hidden = true;
    const token = ++inline.token;
    inline.timer = setTimeout(() => runInline(query, token), INLINE_DEBOUNCE_MS);
  }

  async function runInline(query, token) {
    const chat = state.current;
    const as = sendAs();
    const box = $("inline");
    // Earlier results stay until the new ones arrive, as in Telegram; only the head says so.
    if (box.hidden) inlineStatus("asking the bot…", false);
    else {
      const note = box.querySelector(".inline-head");
      if (note) note.replaceWith(inlineHead("asking the bot…"));
    }
    try {
      const answer = await api("/api/inline", { chat, query, as });
      if (token !== inline.token || chat !== state.current) return;
      renderInlineResults(answer, chat, as);
    } catch (e) {
      if (token !== inline.token) return;
      inlineStatus(e.status === 504 ? "The bot did not answer in time." : `Inline query failed: ${e.message}`, true);
    }
  }

  // A caption's first line through the same sanitiser as the chats' messages (Telegram HTML).
  function captionLine(r) {
    if (r.html !== null && r.html !== undefined) {
      const first = r.html.split("\n")[0];
      if (first.trim()) return renderTelegramHtml(first);
    }
    const plain = (r.text || "").split("\n")[0];
    return document.createTextNode(plain.trim() ? plain : r.title || r.id);
  }

  function renderInlineResults(answer, chat, as) {
    const box = $("inline");
    const strip = el("div", "inline-strip");
    strip.setAttribute("role", "listbox");
    strip.setAttribute("aria-label", "Inline results");
    for (const r of answer.results) {
      const item = el("button", "inline-result");
      item.type = "button";
      item.setAttribute("role", "option");
      item.dataset.id = r.id;
      if (r.photo) {
        const img = el("img");
        img.src = r.photo.url;
        img.alt = r.title || "chart";
        item.appendChild(img);
      }
      const label = el("div", "inline-caption");
      label.appendChild(captionLine(r));
      item.appendChild(label);
      item.title = r.title || r.text || r.id;
      if (r.sendable) item.addEventListener("click", () => chooseInline(chat, as, answer.query_id, r, item));
      else {
        item.disabled = true;
        item.title = `${item.title} (this kind of result is not simulated)`;
      }
      strip.appendChild(item);
    }
    if (!answer.results.length && !answer.button) strip.appendChild(el("div", "inline-status", "No results"));
    const head = inlineHead(answer.query ? `“${answer.query}”` : "every chart");
    if (answer.button) box.replaceChildren(head, inlineButton(answer.button), strip);
    else box.replaceChildren(head, strip);
    box.hidden = false;
  }

  // The bot's button above its results, as in Telegram: it opens the private chat with the bot and
  // sends /start with the button's parameter.
  function inlineButton(button) {
    const node = el("button", "inline-button", button.text || "");
    node.type = "button";
    node.addEventListener("click", () => startInPrivateChat(button.start_parameter || ""));
    return node;
  }

  // Opens the private chat with the bot and sends /start with `parameter`, as Telegram does for
  // the button above inline results and for a deep link https://t.me/<bot>?start=<parameter>.
  async function startInPrivateChat(parameter) {
    const privateChat = [...state.chats.values()].find((c) => c.info.type === "private");
    if (!privateChat) return;
    if (state.editing) stopEdit();
    $("input").value = "";
    hideInline();
    selectChat(privateChat.info.id);
    await send(parameter ? `/start ${parameter}` : "/start");
  }

  // The start parameter of a deep link into this bot (t.me or telegram.me, ?start=...), "" for a
  // link without one, null for any other URL.
  function startParameterOf(href) {
    if (!state.bot || !state.bot.username) return null;
    let url;
    try {
      url = new URL(href);
    } catch (e) {
      return null;
    }
    const host = url.hostname.toLowerCase();
    if (!["t.me", "telegram.me", "www.t.me", "www.telegram.me"].includes(host)) return null;
    if (url.pathname.replace(/\/+$/, "").toLowerCase() !== `/${state.bot.username.toLowerCase()}`) return null;
    const parameter = url.searchParams.get("start");
    // Telegram passes on only 1-64 of A-Z a-z 0-9 _ -; with anything else it just opens the chat.
    return parameter !== null && /^[A-Za-z0-9_-]{1,64}$/.test(parameter) ? parameter : "";
  }

  async function chooseInline(chat, as, queryId, result, node) {
    node.disabled = true;
    try {
      await api("/api/inline/choose", { chat, query_id: queryId, result_id: result.id, as });
      $("input").value = "";
      hideInline();
      stick = true;
    } catch (e) {
      node.disabled = false;
      toast(`Not sent: ${e.message}`);
    }
  }

  async function setLanguage(lang) {
    try {
      const answer = await api("/api/language", { lang });
      state.lang = answer.lang;
      renderLanguage();
      loadCommands();
    } catch (e) {
      toast(`Language not changed: ${e.message}`);
    }
  }

  function renderLanguage() {
    for (const b of document.querySelectorAll(".lang button")) {
      b.classList.toggle("on", b.dataset.lang === state.lang);
      b.setAttribute("aria-pressed", String(b.dataset.lang === state.lang));
    }
    document.documentElement.lang = state.lang;
  }

  async function pushNow() {
    const button = $("push-now");
    const status = $("push-status");
    button.disabled = true;
    status.textContent = "Pushing…";
    try {
      const r = await api("/api/push", {});
      // "Nothing left to send" only when every subscribed chat really has the day's push.
      const later = [r.retried ? `${r.retried} retrying later` : "", r.unconfirmed ? `${r.unconfirmed} unconfirmed` : ""]
        .filter(Boolean).join(", ");
      if (!r.ok) status.textContent = `No push: ${r.error}`;
      else if (r.sent || r.failed) {
        status.textContent = `Push of ${r.trade_date}: ${r.sent} sent${r.failed ? `, ${r.failed} failed` : ""}`
          + `${later ? `, ${later}` : ""}.`;
      } else if (!r.subscribers) {
        status.textContent = `Push of ${r.trade_date}: no subscribed chat. Send /subscribe first.`;
      } else if (r.delivered >= r.subscribers) {
        status.textContent = `Push of ${r.trade_date}: nothing left to send (each subscribed chat already has it).`;
      } else {
        const missing = r.subscribers - r.delivered;
        status.textContent = `Push of ${r.trade_date}: nothing sent; ${missing} of ${r.subscribers} subscribed`
          + ` chat${r.subscribers === 1 ? "" : "s"} still without it${later ? ` (${later})` : ""}: see the log.`;
      }
    } catch (e) {
      status.textContent = `Push failed: ${e.message}`;
    } finally {
      button.disabled = false;
    }
  }

  // ------------------------------------------------------------------ polling

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  async function poll() {
    for (;;) {
      try {
        const changes = await api(`/api/history?after=${state.seq}&wait=25`);
        if (changes.instance !== state.instance || changes.after < state.seq) {
          // The sandbox restarted under the page: start over.
          window.location.reload();
          return;
        }
        apply(changes, false);
        $("conn").textContent = "";
      } catch (e) {
        $("conn").textContent = "Connection to the sandbox lost; retrying…";
        await sleep(2000);
      }
    }
  }

  // "Send as" names the role too, except on a phone, where the message box needs the room.
  const NARROW = window.matchMedia("(max-width: 720px)");
  function labelSendAs() {
    const you = document.querySelector('#send-as option[value="you"]');
    const member = document.querySelector('#send-as option[value="member"]');
    const memberName = state.member ? state.member.name : member.textContent.split(" ")[0];
    you.textContent = NARROW.matches ? "You" : "You (admin)";
    member.textContent = NARROW.matches ? memberName : `${memberName} (member)`;
  }

  async function start() {
    const info = await api("/api/chats");
    state.me = info.me;
    state.member = info.member;
    state.bot = info.bot;
    state.lang = info.lang;
    state.instance = info.instance;
    for (const chat of info.chats) {
      state.chats.set(chat.id, { info: chat, messages: new Map(), nodes: new Map(), unread: 0 });
      state.order.push(chat.id);
    }
    labelSendAs();
    if (state.bot && state.bot.username) {
      const example = `@${state.bot.username} ratio`;
      $("input").placeholder = `Message — ${example} shares a chart (inline mode)`;
      $("inline-example").textContent = example;
    }
    renderLanguage();
    const history = await api("/api/history?after=0");
    apply(history, true);
    for (const chat of state.chats.values()) chat.unread = 0;
    selectChat(state.order[0]);
    poll();
  }

  // ------------------------------------------------------------------ wiring

  function wire() {
    $("composer").addEventListener("submit", (e) => {
      e.preventDefault();
      const input = $("input");
      const text = input.value;
      if (state.editing) {
        saveEdit(text);
        return;
      }
      input.value = "";
      hideInline(); // Enter sends "@bot query" as plain text, as Telegram does
      send(text);
    });
    $("input").addEventListener("input", (e) => {
      const value = e.target.value;
      if (value.startsWith("/") && !/\s/.test(value)) showMenu(value);
      else $("menu").hidden = true;
      onInlineInput(value);
    });
    $("input").addEventListener("keydown", (e) => {
      if (e.key === "Tab" && !$("menu").hidden) {
        const first = $("menu").querySelector(".cmd-name");
        if (first) {
          e.preventDefault();
          e.target.value = `${first.textContent} `;
          $("menu").hidden = true;
        }
      } else if (e.key === "Escape") {
        if (state.editing && $("menu").hidden && $("inline").hidden) stopEdit();
        $("menu").hidden = true;
        hideInline();
      } else if (e.key === "ArrowUp" && !e.target.value && !state.editing && !e.shiftKey && !e.altKey
        && !e.ctrlKey && !e.metaKey && !e.isComposing) {
        const last = lastEditable();
        if (last) {
          e.preventDefault();
          startEdit(last);
        }
      }
    });
    $("edit-cancel").addEventListener("click", () => {
      stopEdit();
      $("input").focus();
    });
    $("menu-button").addEventListener("click", () => {
      if ($("menu").hidden) showMenu("");
      else $("menu").hidden = true;
    });
    $("send-as").addEventListener("change", () => {
      stopEdit(); // the edit was the other sender's
      renderMessages(); // the edit buttons follow who types
      loadCommands();
      onInlineInput($("input").value); // the results are the typist's: ask again as the new sender
    });
    $("start-button").addEventListener("click", () => send("/start"));
    $("push-now").addEventListener("click", pushNow);
    for (const b of document.querySelectorAll(".lang button")) {
      b.addEventListener("click", () => setLanguage(b.dataset.lang));
    }
    $("alert-ok").addEventListener("click", () => { $("alert").hidden = true; });
    $("messages").addEventListener("scroll", () => { stick = nearBottom(); });
    // A deep link into this bot, under a chart or in a message's text: the private chat and /start X.
    $("messages").addEventListener("click", (e) => {
      const link = e.target instanceof Element ? e.target.closest("a[href]") : null;
      const parameter = link ? startParameterOf(link.href) : null;
      if (parameter === null) return;
      e.preventDefault();
      startInPrivateChat(parameter);
    });
    window.addEventListener("resize", () => stickToBottom());
    NARROW.addEventListener("change", labelSendAs);
  }

  window.marginbotSandbox = { renderTelegramHtml };
  wire();
  start().catch((e) => {
    $("conn").textContent = `Could not load the sandbox: ${e.message}`;
  });
})();
