/*
 * ai-cost-exporter Grafana app plugin: no build step, no Angular.
 *
 * Grafana loads an app plugin's module.js as an AMD module (SystemJS) and reads its
 * `plugin` export. The app itself only bundles dashboards (plugin.json `includes`), which
 * Grafana imports when the app is enabled and lists in the app's navigation, so the
 * module exports a plain AppPlugin with no root page and no config page.
 */
define(["@grafana/data"], function (data) {
  "use strict";
  return { plugin: new data.AppPlugin() };
});
