// Renders /openapi.json with Swagger UI (swagger-ui-dist, vendored beside this file). Everything the page loads
// comes from this server: the validator badge, which would call validator.swagger.io, is off.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    tryItOutEnabled: false,
    persistAuthorization: false,
  });
});
