mod batch_tests;
mod builder;
mod clean_tests;
mod header_scan_tests;
mod log_tests;
mod model_proptest;
mod recovery_tests;

impl crate::log::Log {
    pub(crate) fn active_mut_for_test(&mut self) -> &mut crate::segment::Segment {
        let last = self.segments.len() - 1;
        &mut self.segments[last]
    }
}
