// A spatial model with an exact GP prior (the baseline for gp_surrogate.stan).
//
// f = L_K eta_f over all D grid cells, eta_f ~ N(0, I) (non-centred), where
// L_K is the Cholesky factor of the kernel matrix at lengthscale ell, which is
// fixed (ell_lower = ell_upper: factorised once, in transformed data) or
// ell ~ Uniform(ell_lower, ell_upper) (factorised at every gradient, O(D^3)).
// eta = intercept + f + log_offset at the observed cells enters a Gaussian,
// Poisson (log link) or binomial (logit link) likelihood.
functions {
  #include gp.stanfunctions
}
data {
  // --- GP prior ---
  int<lower=1> D; // number of grid cells
  int<lower=1, upper=2> dim; // input dimension
  array[D] vector[dim] x; // cell coordinates
  int<lower=1, upper=4> kernel; // 1 rbf, 2 matern12, 3 matern32, 4 matern52
  real<lower=0> sigma_f; // marginal standard deviation of the GP
  real<lower=0> ell_lower; // lengthscale prior: Uniform(ell_lower, ell_upper)
  real<lower=ell_lower> ell_upper; // (equal bounds: a fixed lengthscale)
  // --- observations ---
  int<lower=0, upper=D> N_obs; // number of observed cells
  array[N_obs] int<lower=1, upper=D> obs_idx; // observed cells (distinct)
  int<lower=1, upper=3> likelihood; // 1 gaussian, 2 poisson, 3 binomial
  vector[likelihood == 1 ? N_obs : 0] y; // gaussian observations
  array[likelihood == 1 ? 0 : N_obs] int<lower=0> counts; // poisson/binomial counts
  array[likelihood == 3 ? N_obs : 0] int<lower=0> trials; // binomial trials
  vector[N_obs] log_offset; // added to the linear predictor (log exposure)
  real intercept_prior_mean; // normal prior on the intercept: mean
  real<lower=0> intercept_prior_sd; // normal prior on the intercept: sd
  real<lower=0> sigma_prior_scale; // half-normal prior scale of the gaussian sd
}
transformed data {
  int fixed = ell_lower == ell_upper; // 1: the lengthscale is not inferred
  real jitter = 1e-6 * square(sigma_f); // added to the kernel's diagonal
  matrix[fixed ? D : 0, fixed ? D : 0] L_fixed;
  if (fixed) {
    L_fixed = cholesky_decompose(add_diag(gp_kernel(x, kernel, ell_lower,
                                                    sigma_f),
                                          jitter));
  }
}
parameters {
  vector[D] eta_f; // standardised field
  array[1 - fixed] real<lower=ell_lower, upper=ell_upper> ell_par; // lengthscale, if inferred
  real intercept; // mean of the linear predictor
  array[likelihood == 1 ? 1 : 0] real<lower=0> sigma; // gaussian noise sd
}
transformed parameters {
  real ell = fixed ? ell_lower : ell_par[1]; // lengthscale
}
model {
  vector[D] f;
  if (fixed) {
    f = L_fixed * eta_f;
  } else {
    f = cholesky_decompose(add_diag(gp_kernel(x, kernel, ell, sigma_f),
                                    jitter))
        * eta_f;
  }
  eta_f ~ std_normal();
  // ell: uniform on its bounds
  intercept ~ normal(intercept_prior_mean, intercept_prior_sd);
  sigma ~ normal(0, sigma_prior_scale);
  target += observations_log_density(intercept + f[obs_idx] + log_offset,
                                     likelihood, y, counts, trials, sigma);
}
generated quantities {
  vector[D] f; // the field at every cell
  vector[N_obs] log_lik; // pointwise log-likelihood of the observations
  if (fixed) {
    f = L_fixed * eta_f;
  } else {
    f = cholesky_decompose(add_diag(gp_kernel(x, kernel, ell, sigma_f),
                                    jitter))
        * eta_f;
  }
  log_lik = observations_log_lik(intercept + f[obs_idx] + log_offset,
                                 likelihood, y, counts, trials, sigma);
}

