// --- GP prior ---
int<lower=1> D; // number of cells
int<lower=1, upper=2> dim; // input dimension
array[D] vector[dim] x; // cell coordinates
int<lower=1, upper=4> kernel; // 1 rbf, 2 matern12, 3 matern32, 4 matern52
real<lower=0> sigma_f; // marginal standard deviation of the GP
real<lower=0> ell_lower; // lengthscale prior: Uniform(ell_lower, ell_upper)
real<lower=ell_lower> ell_upper; // (equal bounds: a fixed lengthscale)
