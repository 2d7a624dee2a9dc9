// The card field when Stripe takes the cards: Stripe's Payment Element in deferred
// intent mode. Stripe.js draws the card inputs in Stripe's own frames; when the
// form is sent, it checks them (elements.submit), turns the card into a
// PaymentMethod (stripe.createPaymentMethod), and the form carries only that id
// (pm_…) as "card". The server then creates and confirms the payment with its
// idempotency key. Card numbers never reach Kinlink. Without this script (or
// without Stripe.js) the page says the card field needs JavaScript.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const mount = document.getElementById("payment-element");
  if (!mount || typeof Stripe !== "function") return;
  const form = mount.closest("form");
  const token = form.querySelector("input[name=card]");
  const amount = form.querySelector("input[name=amount]");
  const button = form.querySelector("button[type=submit]");
  const error = document.getElementById("card-error");
  const min = 100, max = 50000; // the least a payment here is ($1 deposit), the most a top-up is

  const stripe = Stripe(mount.dataset.stripeKey, { locale: mount.dataset.locale || "auto" });
  const elements = stripe.elements({
    mode: "payment",
    currency: "usd",
    amount: Number(mount.dataset.amount) || min,
    paymentMethodCreation: "manual",
    paymentMethodTypes: ["card"], // the server confirms without redirects: cards only
  });
  // No wallet buttons: the site's Permissions-Policy keeps the Payment Request API off.
  elements.create("payment", { wallets: { applePay: "never", googlePay: "never" } }).mount(mount);

  // The amount typed above, in cents, read as the server reads it: "25",
  // "$25.50", "25,50". Anything else leaves the element's amount as it was.
  const cents = (typed) => {
    const m = /^\s*\$?\s*(\d{0,9})(?:[.,](\d{1,2}))?\s*$/.exec(typed);
    if (!m || (m[1] === "" && m[2] === undefined)) return NaN;
    return Number(m[1] || 0) * 100 + Number(((m[2] || "") + "00").slice(0, 2));
  };
  // A top-up's amount is typed on the page; a deposit's total is fixed by then.
  amount?.addEventListener("input", () => {
    const c = cents(amount.value);
    if (c >= min && c <= max) elements.update({ amount: c });
  });

  const show = (message) => {
    error.textContent = message || mount.dataset.failed;
    error.hidden = false;
  };
  // A page brought back from the history starts over: a PaymentMethod is used once.
  window.addEventListener("pageshow", () => {
    token.value = "";
    button.disabled = false;
  });

  form.addEventListener("submit", async (event) => {
    // A button that sends the form elsewhere (a deposit's "Change") needs no card.
    if (event.submitter && event.submitter.formAction && event.submitter.formAction !== form.action) return;
    event.preventDefault();
    if (button.disabled) return; // already on its way
    button.disabled = true;
    error.hidden = true;
    try {
      const checked = await elements.submit();
      if (checked.error) throw checked.error;
      const made = await stripe.createPaymentMethod({ elements });
      if (made.error) throw made.error;
      token.value = made.paymentMethod.id;
      form.submit(); // no submit event: this is the form's own sending
    } catch (e) {
      button.disabled = false;
      show(e && e.message);
    }
  });
});
