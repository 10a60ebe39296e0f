// rtap's demo shop: its catalogue and a cart in localStorage. The tracking is tracker.js's (loaded first, from
// the collector): data-rtap-* attributes on the buttons, and the commerce calls below for what no click says
// (a product seen, a search, an order placed).
"use strict";

const PRODUCTS = [
  { id: "demo-trail-runner", name: "Trail Runner", category: "shoes", price: 89.0, hue: 16,
    blurb: "A light running shoe with a grippy sole for wet paths and gravel." },
  { id: "demo-storm-shell", name: "Storm Shell", category: "jackets", price: 149.0, hue: 205,
    blurb: "A packable rain jacket, taped seams, a hood that stays put in the wind." },
  { id: "demo-linen-shirt", name: "Linen Shirt", category: "shirts", price: 45.5, hue: 42,
    blurb: "Washed linen, relaxed fit, for the warmest days of the year." },
  { id: "demo-canvas-tote", name: "Canvas Tote", category: "bags", price: 29.9, hue: 95,
    blurb: "Heavy cotton canvas with an inside pocket; carries a laptop and lunch." },
  { id: "demo-field-watch", name: "Field Watch", category: "watches", price: 189.0, hue: 150,
    blurb: "A 38 mm steel case, a legible dial and a strap you can change in a minute." },
  { id: "demo-aviator", name: "Aviator Sunglasses", category: "sunglasses", price: 64.0, hue: 265,
    blurb: "Polarised lenses in a thin metal frame." },
  { id: "demo-arc-lamp", name: "Arc Desk Lamp", category: "home", price: 54.9, hue: 320,
    blurb: "A warm, dimmable light on an arm that reaches across the desk." },
  { id: "demo-studio-headphones", name: "Studio Headphones", category: "electronics", price: 119.0, hue: 235,
    blurb: "Closed-back headphones, detachable cable, 30 hours on a charge." },
];
const byId = (id) => PRODUCTS.find((p) => p.id === id);
const money = (value) => new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" }).format(value);
const params = new URLSearchParams(location.search);
const $ = (selector) => document.querySelector(selector);

const el = (tag, attributes, ...children) => {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (name === "class") node.className = value;
    else node.setAttribute(name, value);
  }
  node.append(...children);
  return node;
};

// The cart: [{id, quantity}] under one localStorage key.
const cart = {
  key: "demo_shop_cart",
  lines() {
    try {
      return JSON.parse(localStorage.getItem(this.key)) || [];
    } catch (e) {
      return [];
    }
  },
  save(lines) {
    localStorage.setItem(this.key, JSON.stringify(lines));
    showCartCount();
  },
  add(id, quantity) {
    const lines = this.lines();
    const line = lines.find((l) => l.id === id);
    if (line) line.quantity += quantity;
    else lines.push({ id, quantity });
    this.save(lines);
  },
  remove(id) {
    this.save(this.lines().filter((l) => l.id !== id));
  },
  items() {
    return this.lines().filter((l) => byId(l.id)).map((l) => Object.assign({ quantity: l.quantity }, byId(l.id)));
  },
  total() {
    return this.items().reduce((sum, item) => sum + item.price * item.quantity, 0);
  },
};

function showCartCount() {
  const count = cart.lines().reduce((n, l) => n + l.quantity, 0);
  $("#cart-count").textContent = count;
  $("#cart-count").hidden = count === 0;
}

const picture = (product, size) =>
  el("div", { class: `picture ${size}`, style: `--hue: ${product.hue}`, "aria-hidden": "true" },
    el("span", {}, product.name.split(" ").slice(0, 2).map((w) => w[0]).join("")));

function catalogue() {
  const query = (params.get("q") || "").trim();
  const category = params.get("category");
  if (query) {
    rtap.search(query);
    $("#q").value = query;
  }
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  const shown = PRODUCTS.filter((p) => (!category || p.category === category)
    && words.every((w) => `${p.name} ${p.category} ${p.blurb}`.toLowerCase().includes(w)));
  $("#heading").textContent = query ? `Results for “${query}”` : category ? `All ${category}` : "New this season";
  $("#categories").append(
    el("a", { href: "index.html", class: category ? "" : "active" }, "All"),
    ...[...new Set(PRODUCTS.map((p) => p.category))].map((c) =>
      el("a", { href: `index.html?category=${c}`, class: c === category ? "active" : "" }, c)));
  const grid = $("#products");
  if (!shown.length) grid.append(el("p", { class: "empty" }, "Nothing matches that. Try “shoes” or “lamp”."));
  for (const p of shown) {
    grid.append(el("a", { class: "card", href: `product.html?id=${p.id}`, "data-product": p.id },
      picture(p, "small"),
      el("span", { class: "category" }, p.category),
      el("span", { class: "name" }, p.name),
      el("span", { class: "price" }, money(p.price))));
  }
}

function product() {
  const p = byId(params.get("id"));
  if (!p) {
    $("#product").replaceChildren(el("p", { class: "empty" }, "No such product. ",
      el("a", { href: "index.html" }, "Back to the catalogue")));
    return;
  }
  document.title = `${p.name} · rtap demo shop`;
  rtap.productView({ product_id: p.id, category: p.category, price: p.price });
  const quantity = el("select", { id: "quantity", "aria-label": "quantity" },
    ...[1, 2, 3, 4, 5].map((n) => el("option", { value: n }, String(n))));
  const add = el("button", {
    id: "add-to-cart", class: "primary", type: "button",
    "data-rtap-event": "add_to_cart", "data-rtap-product-id": p.id, "data-rtap-category": p.category,
    "data-rtap-price": p.price, "data-rtap-quantity": "1",
  }, "Add to cart");
  quantity.addEventListener("change", () => add.setAttribute("data-rtap-quantity", quantity.value));
  const note = el("p", { id: "added", class: "note", hidden: "" });
  add.addEventListener("click", () => {
    cart.add(p.id, Number(quantity.value));
    const view = el("a", { href: "cart.html" }, "View cart →");
    note.replaceChildren(`${quantity.value} × ${p.name} in your cart. `, view);
    note.hidden = false;
  });
  $("#product").replaceChildren(
    picture(p, "large"),
    el("div", { class: "details" },
      el("a", { class: "category", href: `index.html?category=${p.category}` }, p.category),
      el("h1", {}, p.name),
      el("p", { class: "price big" }, money(p.price)),
      el("p", { class: "blurb" }, p.blurb),
      el("div", { class: "buy" }, quantity, add),
      note));
}

function cartPage() {
  const items = cart.items();
  const list = $("#lines");
  list.replaceChildren();
  if (!items.length) {
    const browse = el("a", { href: "index.html" }, "Browse the shop");
    list.append(el("p", { class: "empty" }, "Your cart is empty. ", browse));
    $("#summary").hidden = true;
    return;
  }
  for (const item of items) {
    const remove = el("button", {
      class: "link remove", type: "button", "data-remove": item.id,
      "data-rtap-event": "remove_from_cart", "data-rtap-product-id": item.id, "data-rtap-category": item.category,
      "data-rtap-price": item.price, "data-rtap-quantity": item.quantity,
    }, "Remove");
    remove.addEventListener("click", () => {
      cart.remove(item.id);
      cartPage();
    });
    list.append(el("div", { class: "line" },
      picture(item, "tiny"),
      el("a", { class: "name", href: `product.html?id=${item.id}` }, item.name),
      el("span", { class: "quantity" }, `× ${item.quantity}`),
      el("span", { class: "price" }, money(item.price * item.quantity)),
      remove));
  }
  $("#total").textContent = money(cart.total());
  $("#summary").hidden = false;
}

function checkout() {
  const items = cart.items();
  if (!items.length) {
    $("#checkout").replaceChildren(el("p", { class: "empty" }, "Nothing to check out. ",
      el("a", { href: "index.html" }, "Browse the shop")));
    return;
  }
  rtap.checkout();
  $("#order-lines").append(...items.map((i) =>
    el("li", {}, el("span", {}, `${i.name} × ${i.quantity}`), el("span", {}, money(i.price * i.quantity)))));
  $("#order-total").textContent = money(cart.total());
  $("#order-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const orderId = "order-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 8);
    // One purchase event per cart line, all with the order's id: how contract v1 counts orders and revenue.
    for (const i of items) {
      const line = { product_id: i.id, category: i.category, price: i.price, quantity: i.quantity };
      rtap.purchase(Object.assign({ order_id: orderId }, line));
    }
    rtap.flush(); // the order is the event that matters most: send it now, not at the next interval
    cart.save([]);
    $("#order-id").textContent = orderId;
    $("#checkout").hidden = true;
    $("#confirmation").hidden = false;
  });
}

function footer() {
  const toggle = $("#tracking");
  const show = () => {
    const status = rtap.status();
    toggle.textContent = status.tracking ? "Stop tracking me" : "Track me again";
    $("#queued").textContent = status.tracking
      ? status.queued ? `${status.queued} event${status.queued > 1 ? "s" : ""} waiting to be sent` : "all events sent"
      : "not tracking (opted out or Do Not Track)";
  };
  toggle.addEventListener("click", () => {
    if (rtap.status().tracking) rtap.optOut();
    else rtap.optIn();
    show();
  });
  show();
  setInterval(show, 1000);
}

const PAGES = { catalogue, product, cart: cartPage, checkout };
document.addEventListener("DOMContentLoaded", () => {
  showCartCount();
  PAGES[document.body.dataset.page]();
  footer();
});
