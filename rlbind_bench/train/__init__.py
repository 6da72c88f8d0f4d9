"""The bundled trainer: backbone binding, FARE, TeCoA, PMG-AFT, RLBind stages 1 and 2."""
