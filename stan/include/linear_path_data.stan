// --- a CVAE's conditioned linear path, as written by `surrogate export` ---
int<lower=0> G; // knots at which L(c) is tabulated (0: no linear path)
vector[G] lin_knots; // the knots, increasing
array[G] matrix[K, K] lin_factor; // L(c) = chol(B' Sigma(c) B) at each knot
matrix[G > 0 ? D : 0, G > 0 ? K : 0] lin_basis; // the shared Karhunen-Loeve basis B
