// GraphiQL for Hearth, served from the binary (no CDN): queries and mutations over POST
// /graphql with the browser's cookie session (and the CSRF token the web UI keeps for it),
// subscriptions over /graphql/ws. A token pasted into the Headers tab works too.
(function () {
  "use strict";
  const csrf = sessionStorage.getItem("hearth.csrf") || "";
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  const fetcher = GraphiQL.createFetcher({
    url: "/graphql",
    subscriptionUrl: scheme + location.host + "/graphql/ws",
    headers: csrf ? { "X-CSRF-Token": csrf } : {},
  });
  const root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultEditorToolsVisibility: true,
      defaultQuery: "# Hearth's GraphQL API. Log in on / first, or set a Bearer token in Headers.\n{\n  me { username role }\n  models { key status }\n}\n",
    }),
  );
  document.documentElement.dataset.graphiql = "ready";
})();
