// The API reference page (/api/docs/): renders the OpenAPI description served by /api/schema/,
// with nothing loaded from elsewhere. Each operation: method, path, what it does, its
// parameters, the body it takes and the answers it gives (schemas by name, one level deep).
(function () {
  "use strict";
  const root = document.querySelector("[data-api-docs]");
  if (!root) return;

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text) node.textContent = text;
    if (className) node.className = className;
    return node;
  }

  function refName(schema) {
    if (!schema) return "";
    if (schema.$ref) return schema.$ref.split("/").pop();
    if (schema.type === "array") return refName(schema.items) + "[]";
    if (schema.allOf) return schema.allOf.map(refName).join(" & ");
    return schema.type || "object";
  }

  function fieldsOf(schema, components) {
    const name = schema && schema.$ref ? schema.$ref.split("/").pop() : "";
    const resolved = name ? components[name] : schema;
    const list = el("ul", "", "api-fields");
    const properties = (resolved && resolved.properties) || {};
    const required = new Set((resolved && resolved.required) || []);
    Object.keys(properties).forEach(function (field) {
      const item = el("li");
      item.append(el("code", field), " ", el("span", refName(properties[field]), "muted"));
      if (required.has(field)) item.append(" ", el("strong", "*"));
      if (properties[field].description) item.append(" — " + properties[field].description);
      if (properties[field].enum) item.append(" (" + properties[field].enum.join(", ") + ")");
      list.append(item);
    });
    return list;
  }

  function render(schema) {
    root.textContent = "";
    const components = (schema.components && schema.components.schemas) || {};
    Object.keys(schema.paths).sort().forEach(function (path) {
      const operations = schema.paths[path];
      Object.keys(operations).forEach(function (method) {
        const op = operations[method];
        if (typeof op !== "object" || !op.responses) return;
        const box = el("details", "", "api-operation");
        const summary = el("summary");
        summary.append(el("code", method.toUpperCase(), "api-method"), " ", el("code", path));
        box.append(summary);
        if (op.description) box.append(el("p", op.description));
        if (op.parameters && op.parameters.length) {
          box.append(el("h4", "Parameters"));
          const list = el("ul", "", "api-fields");
          op.parameters.forEach(function (p) {
            const item = el("li");
            item.append(el("code", p.name), " ", el("span", p.in + ", " + refName(p.schema), "muted"));
            if (p.required) item.append(" ", el("strong", "*"));
            if (p.description) item.append(" — " + p.description);
            list.append(item);
          });
          box.append(list);
        }
        const body = op.requestBody && op.requestBody.content && op.requestBody.content["application/json"];
        if (body) {
          box.append(el("h4", "Body: " + refName(body.schema)));
          box.append(fieldsOf(body.schema, components));
        }
        box.append(el("h4", "Answers"));
        const answers = el("ul", "", "api-fields");
        Object.keys(op.responses).forEach(function (code) {
          const content = op.responses[code].content;
          const json = content && (content["application/json"] || Object.values(content)[0]);
          answers.append(el("li", code + (json ? " " + refName(json.schema) : "")));
        });
        box.append(answers);
        root.append(box);
      });
    });
  }

  fetch(root.dataset.schemaUrl, { headers: { Accept: "application/json" } })
    .then(function (response) { return response.json(); })
    .then(render)
    .catch(function (error) { root.textContent = "The API description could not be loaded: " + error; });
})();
