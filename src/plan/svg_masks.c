/* svg_masks.c : Sparse VideoGen planner (spatial / temporal heads).
 * Placeholder until the SVG issue lands: reports the method as unsupported. */
#include "plan.h"

svoo_status svoo_plan_svg(const svoo_plan_input *in, svoo_plan *plan) {
    (void)in;
    (void)plan;
    return svoo_err(SVOO_ERR_UNSUPPORTED, "method svg: not implemented yet");
}
