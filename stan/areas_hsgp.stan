// A map (sites or area centroids) with a Hilbert-space approximate GP prior
// (HSGP; Riutort-Mayol et al. 2023): the scalable approximate baseline for
// areas_surrogate.stan on a GP-trained decoder, and for areas_gp.stan.
//
// The sites' bounding box, centred, is extended to [-B, B]^dim (B is
// c_boundary times its largest half-range); f = sigma_field * PHI
// (sqrt(S(sqrt(omega2))) .* beta_f) with beta_f ~ N(0, I): M Laplacian
// eigenfunctions per dimension (their M^2 tensor products in 2-D) weighted by
// the spectral density S of the unit-variance kernel at lengthscale ell (in
// the sites' units), fixed (ell_lower = ell_upper) or Uniform(ell_lower,
// ell_upper). A gradient costs O(N_obs M^dim). At the observed areas, eta =
// intercept + X beta + f (+ an unstructured effect) + log_offset enters a
// Gaussian, Poisson (log link) or binomial (logit link) likelihood. Compile
// with the include path stan/include.
functions {
  #include gp.stanfunctions
  #include areas.stanfunctions
  
  #include hsgp.stanfunctions
}
data {
  // --- basis ---
  int<lower=1> M; // basis functions per dimension
  real<lower=1> c_boundary; // boundary factor: the sites' box is extended c times
  #include gp_prior_data.stan
  #include observation_cells_data.stan
  
  #include observation_values_data.stan
  
  #include areas_data.stan
}
transformed data {
  check_observations(likelihood, counts, trials);
  matrix[N_obs, P] X_obs = X[obs_idx]; // covariates at the observed areas
  int fixed = ell_lower == ell_upper; // 1: the lengthscale is not inferred
  int M_total = dim == 1 ? M : M * M; // number of basis functions
  real B = hsgp_half_width(x, c_boundary); // half-width of the domain
  vector[M_total] omega2 = hsgp_omega2(M, dim, B); // squared frequencies
  matrix[D, M_total] PHI = hsgp_basis(x, M, B, hsgp_centre(x)); // eigenfunctions at the sites
  matrix[N_obs, M_total] PHI_obs = PHI[obs_idx]; // at the observed sites
}
parameters {
  vector[M_total] beta_f; // standardised basis weights
  array[1 - fixed] real<lower=ell_lower, upper=ell_upper> ell_par; // lengthscale, if inferred
  real intercept; // mean of the linear predictor
  vector[P] beta; // coefficients of the standardised covariates
  real<lower=0> sigma_field; // sd of the spatial field
  vector[iid ? D : 0] u_raw; // standardised unstructured effects
  array[iid] real<lower=0> sigma_iid; // their sd
  array[likelihood == 1 ? 1 : 0] real<lower=0> sigma; // gaussian noise sd
}
transformed parameters {
  real ell = fixed ? ell_lower : ell_par[1]; // lengthscale
}
model {
  vector[M_total] w = sigma_field
                      * exp(0.5
                            * gp_log_spd(omega2, kernel, dim, ell, sigma_f))
                      .* beta_f;
  vector[D] u = iid_effect(u_raw, sigma_iid, D);
  beta_f ~ std_normal();
  // ell: uniform on its bounds
  intercept ~ normal(intercept_prior_mean, intercept_prior_sd);
  beta ~ normal(0, beta_prior_sd);
  sigma_field ~ normal(0, field_sd_prior_scale);
  u_raw ~ std_normal();
  sigma_iid ~ normal(0, field_sd_prior_scale);
  sigma ~ normal(0, sigma_prior_scale);
  target += observations_log_density(intercept + X_obs * beta + PHI_obs * w
                                     + u[obs_idx] + log_offset, likelihood,
                                     y, counts, trials, sigma);
}
generated quantities {
  // the field at every location
  vector[D] f = PHI
                * (sigma_field
                   * exp(0.5 * gp_log_spd(omega2, kernel, dim, ell, sigma_f))
                   .* beta_f);
  // the linear predictor (without the offset) and its exponential
  vector[D] eta = intercept + X * beta + f + iid_effect(u_raw, sigma_iid, D);
  vector[D] rr = exp(eta);
  // pointwise log-likelihood of the observations
  vector[N_obs] log_lik = observations_log_lik(eta[obs_idx] + log_offset,
                                               likelihood, y, counts, trials,
                                               sigma);
}

