// --- a CVAE's conditioned linear path, as written by `surrogate export` ---
int<lower=0> G; // knots at which L(c) is tabulated (0: no linear path)
vector[G] lin_knots; // the knots, increasing in even steps
int<lower=0> lin_nnz; // entries of L(c) stored (one pattern for all knots)
array[G] vector[lin_nnz] lin_w; // L(c) = chol(B' Sigma(c) B) at each knot, compressed rows
array[lin_nnz] int<lower=1, upper=K> lin_v; // the column of each stored entry
array[G > 0 ? K + 1 : 0] int<lower=1> lin_u; // where each row starts in lin_w
matrix[G > 0 ? D : 0, G > 0 ? K : 0] lin_basis; // the shared Karhunen-Loeve basis B
