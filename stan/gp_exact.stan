// A spatial model with an exact GP prior (the baseline for gp_surrogate.stan).
//
// f = L_K eta_f over all D grid cells, eta_f ~ N(0, I) (non-centred), where
// L_K is the Cholesky factor of the kernel matrix at lengthscale ell, which is
// fixed (ell_lower = ell_upper: factorised once, in transformed data) or
// ell ~ Uniform(ell_lower, ell_upper) (factorised at every gradient, O(D^3)).
// eta = intercept + f + log_offset at the observed cells enters a Gaussian,
// Poisson (log link) or binomial (logit link) likelihood. f is a transformed
// parameter, so generated quantities do no O(D^3) work of their own (Stan
// evaluates transformed parameters once more per saved draw, without
// gradients). Compile with the include path stan/include.
functions {
  #include gp.stanfunctions
}
data {
  #include gp_prior_data.stan
  #include observation_cells_data.stan
  
  #include observation_values_data.stan
}
transformed data {
  check_observations(likelihood, counts, trials);
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
  // the field at every cell
  vector[D] f = fixed ? L_fixed * eta_f
                : cholesky_decompose(add_diag(gp_kernel(x, kernel, ell,
                                                        sigma_f),
                                              jitter))
                  * eta_f;
}
model {
  eta_f ~ std_normal();
  // ell: uniform on its bounds
  intercept ~ normal(intercept_prior_mean, intercept_prior_sd);
  sigma ~ normal(0, sigma_prior_scale);
  target += observations_log_density(intercept + f[obs_idx] + log_offset,
                                     likelihood, y, counts, trials, sigma);
}
generated quantities {
  // pointwise log-likelihood of the observations
  vector[N_obs] log_lik = observations_log_lik(intercept + f[obs_idx]
                                               + log_offset, likelihood, y,
                                               counts, trials, sigma);
}

