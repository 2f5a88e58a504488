// Starts the vendored Swagger UI on /docs (an external file: the CSP forbids inline scripts).
const root = document.getElementById("swagger-ui");
window.SwaggerUIBundle({
  url: root.dataset.openapiUrl,
  dom_id: "#swagger-ui",
  deepLinking: true,
  persistAuthorization: false,
});
