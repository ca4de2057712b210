local shipped = import 'lib/shipped.libsonnet';

{
  prometheusRules+:: shipped.mapRules(shipped.rules, function(rule) rule {
    expr: shipped.withSelector(super.expr, $._config.exporterSelector),
  }),
}
