// Swagger UI for /docs, from the locally served bundle (no CDN; no inline script, so the strict CSP holds).
"use strict";
window.addEventListener("load", () => {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true, persistAuthorization: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset], layout: "BaseLayout",
    requestInterceptor: req => {  // the token typed on the lesiondx pages, unless "Authorize" set one
      const token = localStorage.getItem("lesiondx-token");
      if (token && !req.headers.Authorization) req.headers.Authorization = "Bearer " + token;
      return req;
    },
  });
});
