"""The decision boundary: how far (PGD with a projected gradient, bisection onto the crossing) and how curved (DeepFool
boundary points, Hessians of the logit difference); the field's standard attacks (AutoAttack, through torchattacks).
Imports lib.infra."""
