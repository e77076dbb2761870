// Renders the HTTP API reference page's OpenAPI document with Swagger UI (served by the site
// itself from npm's swagger-ui-dist; see scripts/docs_hooks.py). "Try it out" is off: the site
// has no server behind it.
/* global SwaggerUIBundle */
(function () {
  const mount = document.getElementById("swagger-ui");
  if (!mount || typeof SwaggerUIBundle === "undefined") {
    return;
  }
  SwaggerUIBundle({
    url: mount.dataset.openapi,
    domNode: mount,
    deepLinking: true,
    supportedSubmitMethods: [],
  });
})();
