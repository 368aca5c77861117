// A space-time disease map whose spatial fields come from a surrogate prior:
// the decoder of a PriorVAE / PriorCVAE trained once on the map (BYM2, ICAR,
// CAR, GP or aggregated GP) and reused for every field.
//
// The model is spacetime_bym2.stan's with each unit spatial field u_j
// = decoder(z_j) or decoder(z_j, c), z_j ~ N(0, I) in R^K: eta = intercept
// + x_it beta + s_i + gamma_t + epsilon_t + delta_it, with Knorr-Held
// interactions I-IV, or AR1 fields f_t = rho f_(t-1) + sqrt(1 - rho^2) u_t
// in place of s (interaction 5). A CVAE's condition c (lengthscale, CAR
// alpha or BYM2 rho) ~ Uniform(cond_lower, cond_upper): one for the main
// effect's fields, one for the interaction's. A gradient costs one decoder
// pass per field: T + 1 for type III, T for AR1 fields.
// Compile with the include path stan/include.
functions {
  #include decoder.stanfunctions
  #include gp.stanfunctions
  
  #include areas.stanfunctions
  
  #include spacetime.stanfunctions
}
data {
  // --- hyperparameter prior (used when C = 1) ---
  real cond_lower; // lower bound of the uniform prior on the condition
  real<lower=cond_lower> cond_upper; // upper bound
  #include decoder_data.stan
  #include linear_path_data.stan
  
  #include spacetime_data.stan
  #include observation_values_data.stan
}
transformed data {
  if (C > 1) {
    reject("C must be 0 (VAE) or 1 (CVAE on one hyperparameter); found ", C);
  }
  if (C == 1 && !(cond_lower < cond_upper)) {
    reject("cond_lower must be below cond_upper for a CVAE; found ",
           cond_lower, " and ", cond_upper);
  }
  check_widths(L, H);
  check_observations(likelihood, counts, trials);
  check_spacetime(interaction, temporal, T);
  int F = spatial_fields(interaction, T); // unit spatial fields
  int F_int = F - (interaction == 5 ? T : 1); // of which the interaction's
  matrix[N_obs, P] X_obs = X[obs_idx]; // covariates at the observed cells
  matrix[T, T - 1] Q_time = sum_to_zero_basis(T);
  matrix[T - 1, T - 1] rw1_cov = rw1_covariance(Q_time);
}
parameters {
  matrix[K, F] z; // latent codes, one column per field
  array[C] real<lower=cond_lower, upper=cond_upper> cond; // condition of the main fields (C = 1)
  array[F_int > 0 ? C : 0] real<lower=cond_lower, upper=cond_upper> cond_int; // of the interaction's
  real intercept; // mean of the linear predictor
  vector[P] beta; // coefficients of the standardised covariates
  real<lower=0> sigma_field; // sd of the spatial main effect
  vector[T - 1] time_free; // the temporal main effect in the sum-to-zero basis (centred)
  array[temporal == 2 ? 1 : 0] real<lower=-1, upper=1> rho_time; // AR1 autocorrelation of the temporal effect
  real<lower=0> sigma_time; // sd of the temporal main effect
  real<lower=0, upper=1> mix_time; // the RW1 / AR1 share of its variance (the rest: iid periods)
  matrix[D, interaction_columns(interaction, T)] int_raw; // type I/II standardised effects
  array[interaction >= 1 && interaction <= 4 ? 1 : 0] real<lower=0> sigma_int; // sd of the interaction
  array[interaction == 5 ? 1 : 0] real<lower=-1, upper=1> rho_fields; // AR1 autocorrelation of the fields
  array[likelihood == 1 ? 1 : 0] real<lower=0> sigma; // gaussian noise sd
}
transformed parameters {
  // the temporal main effect in each period (sums to zero)
  vector[T] time_effect = Q_time * time_free;
  // the structured effect at every area (rows) and period (columns)
  matrix[D, T] effect;
  {
    matrix[D, F] U;
    for (j in 1 : F) {
      U[ : , j] = decoded_field(z[ : , j], j <= F - F_int ? cond : cond_int,
                                L, W1, b1, W2, b2, W3, b3, W4, b4, W_out,
                                b_out, hidden_activation, output_activation,
                                lin_knots, lin_w, lin_v, lin_u, lin_basis);
    }
    effect = spacetime_effect(U, int_raw, interaction, sigma_field,
                              rho_fields, time_effect, sigma_int);
  }
}
model {
  to_vector(z) ~ std_normal();
  // cond, cond_int: uniform on their bounds; rho_time, rho_fields on (-1, 1)
  intercept ~ normal(intercept_prior_mean, intercept_prior_sd);
  beta ~ normal(0, beta_prior_sd);
  sigma_field ~ normal(0, field_sd_prior_scale);
  time_free ~ multi_normal_cholesky(rep_vector(0, T - 1),
                                    sigma_time
                                    * temporal_factor(Q_time, rw1_cov,
                                                      temporal, rho_time,
                                                      mix_time));
  // boundary-avoiding (Chung et al. 2013): a few periods leave a funnel at 0
  sigma_time ~ gamma(2, 2 / field_sd_prior_scale);
  // mix_time: uniform
  to_vector(int_raw) ~ std_normal();
  sigma_int ~ normal(0, field_sd_prior_scale);
  sigma ~ normal(0, sigma_prior_scale);
  target += observations_log_density(intercept + X_obs * beta
                                     + to_vector(effect)[obs_idx]
                                     + log_offset, likelihood, y, counts,
                                     trials, sigma);
}
generated quantities {
  // the linear predictor (without the offset) and its exponential, cells
  // ordered (period - 1) * D + area
  vector[D * T] eta = intercept + X * beta + to_vector(effect);
  vector[D * T] rr = exp(eta);
  // pointwise log-likelihood of the observations
  vector[N_obs] log_lik = observations_log_lik(eta[obs_idx] + log_offset,
                                               likelihood, y, counts, trials,
                                               sigma);
}

