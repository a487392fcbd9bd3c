// Hearth web UI, admin page's usage and rate limits: tokens spent this month per user and
// model (the `usage` query), and the budgets every door spends (the `rateLimits` query).
// Uses app.js's helpers ($, text, gql).
"use strict";

const HearthUsage = (() => {
  function monthStart(today) {
    return `${today.slice(0, 8)}01`;
  }

  async function loadUsage() {
    const today = new Date().toISOString().slice(0, 10);
    const data = await gql(
      "query($from: NaiveDate!, $to: NaiveDate!) { usage(from: $from, to: $to, groupBy: [USER, MODEL]) { userId model requests promptTokens completionTokens totalTokens } users(limit: 100) { users { id username } } }",
      { from: monthStart(today), to: today },
    );
    const names = new Map(data.users.users.map((u) => [u.id, u.username]));
    const rows = data.usage.map((r) => {
      const tr = document.createElement("tr");
      tr.append(
        text("td", names.get(r.userId) || `#${r.userId}`),
        text("td", r.model),
        text("td", String(r.requests)),
        text("td", String(r.promptTokens)),
        text("td", String(r.completionTokens)),
        text("td", String(r.totalTokens)),
      );
      return tr;
    });
    $("#usage tbody").replaceChildren(...rows);
    $("#usage-note").textContent = rows.length
      ? `Since ${monthStart(today)} (UTC).`
      : `No model calls since ${monthStart(today)} (UTC).`;
  }

  async function loadLimits() {
    const { rateLimits } = await gql("{ rateLimits { name budget perAddress doors } }");
    $("#rate-limits tbody").replaceChildren(...rateLimits.map((l) => {
      const tr = document.createElement("tr");
      tr.append(text("td", l.name), text("td", l.budget === "0" ? "off" : l.budget),
        text("td", l.perAddress ? "client address" : "user or API key"), text("td", l.doors));
      return tr;
    }));
  }

  async function show() {
    await Promise.all([loadUsage(), loadLimits()]);
  }

  return { show };
})();
