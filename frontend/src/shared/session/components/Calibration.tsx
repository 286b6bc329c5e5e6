/**
 * Whether a session's risk is calibrated, and against which profile (docs/evaluation.md): from the
 * alerter's own word when it has spoken (the summary's or a risk change's `profile`), else from
 * GET /config's `calibration` for the session's model.
 */
import type { ModelCalibration, RiskMessage, Summary } from "../../../api/types";

export interface CalibrationInfo {
  calibrated: boolean;
  profile: string | null;
}

interface Sources {
  summary?: Summary | null | undefined;
  latestRisk?: RiskMessage | undefined;
  model?: string | null | undefined;
  calibration?: Record<string, ModelCalibration> | undefined;
}

/** What is known of the calibration, or null when nothing says (no event yet and /config not loaded). */
export function calibrationOf({ summary, latestRisk, model, calibration }: Sources): CalibrationInfo | null {
  if (summary?.profile) return { calibrated: true, profile: summary.profile };
  if (latestRisk?.profile) return { calibrated: true, profile: latestRisk.profile };
  // A risk change from an alerter that knows the field: a null profile means uncalibrated.
  if (latestRisk?.evidence) return { calibrated: false, profile: null };
  const known = calibration ?? {};
  const entry = model ? known[model] : undefined;
  if (entry) return { calibrated: entry.calibrated && entry.profile !== null, profile: entry.profile };
  // /config lists every model the gateway serves; one it does not list (pushed) has no profile.
  if (Object.keys(known).length > 0 || summary) return { calibrated: false, profile: null };
  return null;
}

export function CalibrationLabel({ info }: { info: CalibrationInfo | null }) {
  if (!info) return null;
  return info.calibrated ? (
    <span
      className="calib calibrated"
      data-testid="calibration"
      title="The risk is judged against this calibration profile (docs/evaluation.md)"
    >
      calibrated · {info.profile}
    </span>
  ) : (
    <span
      className="calib uncalibrated"
      data-testid="calibration"
      title="No calibration profile for this model: the risk follows the rules' firings"
    >
      uncalibrated
    </span>
  );
}
