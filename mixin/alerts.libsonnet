local shipped = import 'lib/shipped.libsonnet';

{
  prometheusAlerts+:: shipped.mapRules(shipped.alerts, function(rule) rule {
    expr: shipped.withSelector(super.expr, $._config.exporterSelector),
    annotations+: {
      runbook_url: $._config.runbookURLPattern % std.asciiLower(rule.alert),
    },
  }),
}
