// cinema API docs: starts Swagger UI with the platform's three OpenAPI documents.
// Pick one in the top bar, or link to one with ?urls.primaryName=catalog.
// "Try it out" sends requests to this origin; "Authorize" takes an access token from
// POST /api/v1/auth/login (the bearer scheme of every document).
"use strict";

window.addEventListener("DOMContentLoaded", () => {
  window.ui = SwaggerUIBundle({
    urls: [
      { url: "/api/v1/auth/openapi.json", name: "auth" },
      { url: "/api/v1/openapi.json", name: "catalog" },
      { url: "/api/v1/ugc/openapi.json", name: "ugc" },
    ],
    "urls.primaryName": "auth",
    dom_id: "#swagger-ui",
    deepLinking: true,
    // Never send the documents to a third-party validator.
    validatorUrl: null,
    // Keep a token given to "Authorize" across reloads (this browser only).
    persistAuthorization: true,
    displayRequestDuration: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    plugins: [SwaggerUIBundle.plugins.DownloadUrl],
    layout: "StandaloneLayout",
  });
});
